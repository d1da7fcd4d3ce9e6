"""Multi-granularity k-means on a memory bank (faiss, or the released code's first-K Lloyd), with PCL
concentrations.

One :class:`Clustering` per modality holds, for each granularity, the centroids, every bank
entry's assignment and each cluster's concentration φ. It is what CMPC's prototype loss reads
and what the cluster-inspection notebook loads from the run folder.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from avlab.losses.prototype import concentration


@dataclass
class Clustering:
    centroids: list[torch.Tensor]  # (K_g, d) per granularity
    assign: list[torch.Tensor]  # (N,) long per granularity
    phi: list[torch.Tensor]  # (K_g,) per granularity

    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        out = {}
        for g, (c, a, p) in enumerate(zip(self.centroids, self.assign, self.phi)):
            out.update({f"{prefix}.{g}.centroids": c, f"{prefix}.{g}.assign": a, f"{prefix}.{g}.phi": p})
        return out

    @staticmethod
    def from_tensors(tensors: dict[str, torch.Tensor], prefix: str) -> "Clustering | None":
        n = len([k for k in tensors if k.startswith(prefix + ".") and k.endswith(".centroids")])
        if n == 0:
            return None
        get = lambda g, name: tensors[f"{prefix}.{g}.{name}"]  # noqa: E731
        return Clustering([get(g, "centroids") for g in range(n)], [get(g, "assign").long() for g in range(n)],
                          [get(g, "phi") for g in range(n)])


KMEANS_INITS = ("faiss", "first_k")


def lloyd_first_k(x: torch.Tensor, k: int, niter: int = 20,
                  chunk_elems: int = 1 << 24) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The released code's k-means (experiments/cmpc/keops_kmeans.py::KMeans), in plain torch.

    Euclidean Lloyd iterations (``run_kmeans`` calls ``KMeans``, not ``KMeans_cosine``; the bank
    rows are unit vectors but the centroids are plain, un-normalised means). Centroids start as
    the first ``k`` rows of ``x``; there is no empty-cluster repair. Each of the ``niter``
    iterations assigns every point to its nearest centroid (ties: lowest index), then moves each
    centroid to the mean of its points.

    Empty clusters: the released code divides the zero sum by a zero count, so an emptied
    centroid becomes NaN, and KeOps' argmin (strict ``<`` from +inf) never picks a NaN distance
    again: an empty cluster stays empty for the rest of the run. Here the same assignments are
    made by excluding emptied clusters from later assignment steps; their centroid keeps the
    value it had when it lost its last point (finite, where the released code holds NaN; the
    loss never reads it, as no sample is assigned to it).

    Returns ``(centroids (k, d), assign (N,) long, sqdist (N,))``, like the released
    ``(centroids, cl, Dist)``: ``assign`` and ``sqdist`` (squared distance to the assigned centroid)
    come from the last assignment step, i.e. against the centroids *before* the final update.
    The distance uses ‖x‖² − 2x·c + ‖c‖² (clamped at 0) where KeOps sums (x − c)²; they differ
    only by rounding. The assignment step runs over blocks of rows with at most ``chunk_elems``
    distances each, so memory stays O(chunk_elems + N·d + k·d).
    """
    if not 1 <= k <= len(x):
        raise ValueError(f"cannot make {k} clusters from {len(x)} points")
    if niter < 1:
        raise ValueError(f"k-means needs at least one iteration, got {niter}")
    x = x.detach()
    if not x.is_floating_point():
        x = x.float()
    cents = x[:k].clone()
    alive = torch.ones(k, dtype=torch.bool, device=x.device)
    x_sq = (x * x).sum(1)
    step = max(1, chunk_elems // k)  # rows per assignment chunk: bounds the (rows, k) distance block
    for _ in range(niter):
        c_sq = (cents * cents).sum(1)
        assign = torch.empty(len(x), dtype=torch.long, device=x.device)
        sqdist = torch.empty(len(x), dtype=x.dtype, device=x.device)
        for s in range(0, len(x), step):
            d = (x_sq[s:s + step, None] - 2 * x[s:s + step] @ cents.T + c_sq[None, :]).clamp_min_(0)
            d[:, ~alive] = float("inf")
            assign[s:s + step] = d.argmin(1)  # first index among ties, like KeOps' strict `<`
            sqdist[s:s + step] = d.gather(1, assign[s:s + step, None])[:, 0]
        counts = torch.bincount(assign, minlength=k)
        sums = torch.zeros_like(cents).index_add_(0, assign, x)
        filled = counts > 0
        cents[filled] = sums[filled] / counts[filled, None].to(x.dtype)
        alive &= filled
    return cents, assign, sqdist


def kmeans(x: np.ndarray, k: int, niter: int = 20, seed: int = 0, init: str = "faiss") -> tuple[np.ndarray, np.ndarray]:
    """Euclidean k-means: centroids (k, d) and assignments (N,) int64.

    ``init="faiss"`` (default): faiss.Kmeans (random initial centroids drawn with ``seed``, empty
    clusters repaired by splitting), float32; the assignments are against the final centroids.
    ``init="first_k"``: the released code's Lloyd iterations from the first ``k`` rows, no repair
    (:func:`lloyd_first_k`; ``seed`` unused, input float dtype kept).
    """
    if init == "first_k":
        xt = torch.as_tensor(np.ascontiguousarray(x))
        c, a, _ = lloyd_first_k(xt, k, niter)
        return c.numpy(), a.numpy().astype(np.int64)
    if init != "faiss":
        raise ValueError(f"unknown k-means init {init!r} ({' | '.join(KMEANS_INITS)})")
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    if not 1 <= k <= len(x):
        raise ValueError(f"cannot make {k} clusters from {len(x)} points")
    km = faiss.Kmeans(x.shape[1], k, niter=niter, seed=seed, verbose=False, min_points_per_centroid=1,
                      max_points_per_centroid=1_000_000)
    km.train(x)
    _, assign = km.index.search(x, 1)
    return km.centroids.copy(), assign[:, 0].astype(np.int64)


def cluster_bank(bank: torch.Tensor, ks: list[int], niter: int = 20, seed: int = 0,
                 temperature: float = 0.2, init: str = "faiss") -> Clustering:
    """Cluster one memory bank at each K in ``ks``; CPU float32 centroids, long assignments, φ.

    ``init="faiss"`` (default) or ``"first_k"`` (the released KeOps k-means, run on the bank's
    own device; φ then uses the released distances, to the centroids of the last assignment
    step). Granularity g uses ``seed + g`` (faiss only).
    """
    if init not in KMEANS_INITS:
        raise ValueError(f"unknown k-means init {init!r} ({' | '.join(KMEANS_INITS)})")
    x = bank.detach().cpu().numpy().astype(np.float32)
    cents, assigns, phis = [], [], []
    for g, k in enumerate(ks):
        if init == "first_k":
            ct, at, sq = lloyd_first_k(bank.detach().float(), k, niter)
            c, a = ct.cpu().numpy(), at.cpu().numpy().astype(np.int64)
            dist = np.sqrt(sq.cpu().double().numpy())
        else:
            c, a = kmeans(x, k, niter, seed + g)
            dist = None
        cents.append(torch.from_numpy(np.ascontiguousarray(c, dtype=np.float32)))
        assigns.append(torch.from_numpy(a))
        phis.append(torch.from_numpy(concentration(x, c, a, temperature, dist=dist)).float())
    return Clustering(cents, assigns, phis)
