"""CMPC's instance-prototype loss and the PCL concentration that scales it.

Each granularity is a k-means clustering of one modality's memory bank. A voice anchor i is
contrasted against the *face* prototypes of the batch: logits_ij = â_i · Ĉ_{c(j)} / φ_{c(j)}, target
j = i, where c(j) is sample j's face cluster — so the positive is i's own face prototype and the
negatives are the prototypes of the other batch samples, each scaled by its own concentration as
in PCL's ProtoNCE. Faces against voice prototypes are symmetric.

Like the released code, the negatives are the prototypes *of the batch*, not all K prototypes, and
duplicates are kept: when another batch sample j shares i's cluster, column j holds the positive
prototype again (as a negative).

Fidelity switches (default = the paper's intent):

- ``prototype_loss(..., phi_placement=)``: ``"prototype"`` (default, above), ``"anchor"`` (row i
  scaled by the anchor's own φ_{c(i)}: an earlier reading of the paper) or ``"official"`` (the
  released code's column misalignment, see :func:`prototype_loss`).
- ``multi_granularity_loss(..., weighting=)``: ``"mean"`` or ``"official"`` (1/4^(G−g) weights).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

PHI_PLACEMENTS = ("prototype", "anchor", "official")
GRANULARITY_WEIGHTINGS = ("mean", "official")

# Size of the clustering dict that the released criterion divides by inside its granularity loop:
# experiments/cmpc/keops_kmeans.py::run_kmeans returns {'inst2cluster', 'centroids', 'Dist',
# 'density'}, and criterions/cmpc.py::InstProtoCLR.forward does `loss_proto /= len(cluster_result)`.
RELEASED_CLUSTER_DICT_KEYS = 4


def concentration(x: np.ndarray, centroids: np.ndarray, assign: np.ndarray, temperature: float = 0.2,
                  dist: np.ndarray | None = None) -> np.ndarray:
    """PCL concentration per cluster: φ_k = mean‖x − C_k‖ / log(n_k + 10).

    Clusters with at most one member (empty ones included) get the largest φ of the others; φ is
    clipped to its 10th–90th percentiles and rescaled to mean ``temperature``.

    ``dist`` (N,), if given, replaces ‖x − C_{assign}‖: the released k-means
    (keops_kmeans.py::KMeans) measures each point against the centroid of its *last assignment
    step*, i.e. before the final centroid update; :func:`avlab.cluster.cluster_bank` passes those
    distances for ``init="first_k"``.

    >>> x = np.array([[0., 0.], [0., 2.], [5., 5.]])
    >>> phi = concentration(x, np.array([[0., 1.], [5., 5.]]), np.array([0, 0, 1]), temperature=1.0)
    >>> phi.round(4).tolist()  # both clusters get 1/log 12, then the mean is rescaled to 1
    [1.0, 1.0]
    """
    k = len(centroids)
    if dist is None:
        dist = np.linalg.norm(x - centroids[assign], axis=1)
    counts = np.bincount(assign, minlength=k)
    sums = np.bincount(assign, weights=np.asarray(dist, dtype=np.float64), minlength=k)
    phi = np.zeros(k)
    many = counts > 1
    phi[many] = sums[many] / counts[many] / np.log(counts[many] + 10)
    phi[~many] = phi[many].max() if many.any() else 1.0
    phi = np.clip(phi, np.percentile(phi, 10), np.percentile(phi, 90))
    return temperature * phi / phi.mean()


def _released_column_order(rows: torch.Tensor, n: int) -> torch.Tensor:
    """(len(rows), n) index: column k of row i of the released logits holds batch column ``idx[i, k]``.

    ``rows`` are the anchors' positions in the batch. Column 0 is the positive (j = i); columns 1..
    are the other batch samples in ascending order, so for k ≥ 1 the column holds j = k − 1 when
    k ≤ i and j = k when k > i.
    """
    i = rows[:, None]
    k = torch.arange(n, device=rows.device)[None, :]
    return torch.where(k == 0, i, torch.where(k <= i, k - 1, k))


def prototype_loss(anchor: torch.Tensor, prototypes: torch.Tensor, assign: torch.Tensor,
                   phi: torch.Tensor, phi_placement: str = "prototype", offset: int = 0) -> torch.Tensor:
    """Per-sample loss (B,) of ``anchor`` against the other modality's prototypes of the batch.

    ``prototypes`` (K, d) and ``phi`` (K,) are one granularity of the other modality; ``assign``
    gives each batch sample's cluster in it. Under data parallelism ``assign`` covers the global
    batch (gathered from every process) and the local anchors are its rows ``offset …
    offset + B``; in one process ``offset`` is 0 and both are the batch. With s_ij = â_i · Ĉ_{c(j)}:

    - ``"prototype"`` (default; PCL's ProtoNCE): logits_ij = s_ij / φ_{c(j)}, target i.
    - ``"anchor"``: logits_ij = s_ij / φ_{c(i)} (every logit of row i scaled by the anchor's own
      cluster), target i.
    - ``"official"``: what experiments/cmpc/criterions/cmpc.py::InstProtoCLR.forward computes.
      It reorders each row to [s_ii, s_ij for j ≠ i ascending] (positive moved to column 0),
      then divides the (B, B) matrix by ``density[pos_proto_id]`` (shape (B,)), which
      broadcasts over *columns of the reordered matrix*: column k is divided by φ_{c(k)}.
      So the positive of every row is scaled by φ_{c(0)} (sample 0's prototype), the negative
      j > i by its own φ_{c(j)}, and the negative j < i by its neighbour's φ_{c(j+1)}; target 0.

    With all φ equal the three placements give the same loss.
    """
    a = F.normalize(anchor, dim=1)
    protos = F.normalize(prototypes, dim=1)[assign]  # (B, d): Ĉ_{c(j)}
    sims = a @ protos.T  # (B, B): s_ij
    phi_b = phi.to(sims.dtype)[assign]  # (B_all,): φ_{c(j)}
    rows = torch.arange(len(anchor), device=anchor.device) + offset  # the anchors' batch positions
    if phi_placement == "prototype":
        logits, target = sims / phi_b[None, :], rows
    elif phi_placement == "anchor":
        logits, target = sims / phi_b[rows][:, None], rows
    elif phi_placement == "official":
        logits = sims.gather(1, _released_column_order(rows, len(assign))) / phi_b[None, :]
        target = torch.zeros_like(rows)
    else:
        raise ValueError(f"unknown phi placement {phi_placement!r} ({' | '.join(PHI_PLACEMENTS)})")
    return F.cross_entropy(logits, target, reduction="none")


def multi_granularity_loss(losses: list[torch.Tensor], weighting: str = "mean") -> torch.Tensor:
    """Combine per-granularity losses.

    ``mean`` (the paper's intent) averages them. ``official`` reproduces the released code:
    criterions/cmpc.py::InstProtoCLR.forward adds each granularity's loss and then divides the
    running sum by ``len(cluster_result)`` *inside* the granularity loop; the dict it gets is
    keops_kmeans.py::run_kmeans's result, which has four keys (inst2cluster, centroids, Dist,
    density) whatever the number of granularities. For G granularities granularity g (1-based)
    weighs 1/4^(G−g+1): 1/64, 1/16, 1/4 for three.

    >>> ls = [torch.tensor(64.0), torch.tensor(16.0), torch.tensor(4.0)]
    >>> float(multi_granularity_loss(ls)), float(multi_granularity_loss(ls, "official"))
    (28.0, 3.0)
    """
    if weighting == "mean":
        return torch.stack(losses).mean(0)
    if weighting == "official":
        total = torch.zeros_like(losses[0])
        for loss in losses:
            total = (total + loss) / RELEASED_CLUSTER_DICT_KEYS
        return total
    raise ValueError(f"unknown granularity weighting {weighting!r} ({' | '.join(GRANULARITY_WEIGHTINGS)})")
