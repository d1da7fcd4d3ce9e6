"""Multi-granularity k-means on a memory bank (faiss), with PCL concentrations.

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


def kmeans(x: np.ndarray, k: int, niter: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean k-means (faiss): centroids (k, d) float32 and assignments (N,) int64."""
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
                 temperature: float = 0.2) -> Clustering:
    x = bank.detach().cpu().numpy().astype(np.float32)
    cents, assigns, phis = [], [], []
    for g, k in enumerate(ks):
        c, a = kmeans(x, k, niter, seed + g)
        cents.append(torch.from_numpy(c))
        assigns.append(torch.from_numpy(a))
        phis.append(torch.from_numpy(concentration(x, c, a, temperature)).float())
    return Clustering(cents, assigns, phis)
