"""CMPC's instance-prototype loss and the PCL concentration that scales it.

Each granularity is a k-means clustering of one modality's memory bank. A voice anchor i is
contrasted against the *face* prototypes of the batch: logits_ij = â_i · Ĉ_{c(j)} / φ_{c(i)}, target
j = i, where c(j) is sample j's face cluster — so the positive is i's own face prototype and the
negatives are the prototypes of the other batch samples. Faces against voice prototypes are
symmetric.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def concentration(x: np.ndarray, centroids: np.ndarray, assign: np.ndarray, temperature: float = 0.2) -> np.ndarray:
    """PCL concentration per cluster: φ_k = mean‖x − C_k‖ / log(n_k + 10).

    Clusters with at most one member get the largest φ of the others; φ is clipped to its
    10th–90th percentiles and rescaled to mean ``temperature``.

    >>> x = np.array([[0., 0.], [0., 2.], [5., 5.]])
    >>> phi = concentration(x, np.array([[0., 1.], [5., 5.]]), np.array([0, 0, 1]), temperature=1.0)
    >>> phi.round(4).tolist()  # both clusters get 1/log 12, then the mean is rescaled to 1
    [1.0, 1.0]
    """
    k = len(centroids)
    dist = np.linalg.norm(x - centroids[assign], axis=1)
    counts = np.bincount(assign, minlength=k)
    sums = np.bincount(assign, weights=dist, minlength=k)
    phi = np.zeros(k)
    many = counts > 1
    phi[many] = sums[many] / counts[many] / np.log(counts[many] + 10)
    phi[~many] = phi[many].max() if many.any() else 1.0
    phi = np.clip(phi, np.percentile(phi, 10), np.percentile(phi, 90))
    return temperature * phi / phi.mean()


def prototype_loss(anchor: torch.Tensor, prototypes: torch.Tensor, assign: torch.Tensor,
                   phi: torch.Tensor) -> torch.Tensor:
    """Per-sample loss (B,) of ``anchor`` against the other modality's prototypes of the batch.

    ``prototypes`` (K, d) and ``phi`` (K,) are one granularity of the other modality; ``assign``
    (B,) gives each batch sample's cluster in it.
    """
    protos = F.normalize(prototypes, dim=1)[assign]  # (B, d): Ĉ_{c(j)}
    logits = F.normalize(anchor, dim=1) @ protos.T / phi[assign][:, None]  # row i scaled by φ_{c(i)}
    return F.cross_entropy(logits, torch.arange(len(anchor), device=anchor.device), reduction="none")


def multi_granularity_loss(losses: list[torch.Tensor], weighting: str = "mean") -> torch.Tensor:
    """Combine per-granularity losses.

    ``mean`` (the paper's intent) averages them. ``official`` reproduces the released code, which
    divides the running sum by 3 inside its loop (by the number of keys of its cluster dict, not
    of granularities), giving weights 1/27, 1/9, 1/3 for three granularities.

    >>> ls = [torch.tensor(27.0), torch.tensor(9.0), torch.tensor(3.0)]
    >>> float(multi_granularity_loss(ls)), float(multi_granularity_loss(ls, "official"))
    (13.0, 3.0)
    """
    if weighting == "mean":
        return torch.stack(losses).mean(0)
    if weighting == "official":
        total = torch.zeros_like(losses[0])
        for loss in losses:
            total = (total + loss) / 3.0
        return total
    raise ValueError(f"unknown granularity weighting {weighting!r} (mean | official)")
