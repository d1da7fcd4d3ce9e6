"""CMAC's remoulded contrast (DESIGN §2.3): InfoNCE whose denominator holds, for the positive
pair (v_i, a_i), the cross-modal negatives a_j *and* the within-modal negatives v_j (j ≠ i);
symmetrically for a_i. With ``within=False`` it is plain symmetric cross-modal InfoNCE (CID).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def remoulded_from_logits(cross: torch.Tensor, within: torch.Tensor | None) -> torch.Tensor:
    """Per-anchor loss (B,) from ``cross`` (B, B) anchor-i-vs-other-modality-j logits (positive on
    the diagonal) and ``within`` (B, B) anchor-i-vs-same-modality-j logits (its diagonal, the
    anchor with itself, is left out), or None for no within-modal negatives."""
    logits = cross
    if within is not None:
        eye = torch.eye(len(within), dtype=torch.bool, device=within.device)
        logits = torch.cat([cross, within.masked_fill(eye, float("-inf"))], dim=1)
    return F.cross_entropy(logits, torch.arange(len(cross), device=cross.device), reduction="none")


def remoulded_contrast(v: torch.Tensor, a: torch.Tensor, temperature: float = 0.07, within: bool = True,
                       cross_logits: torch.Tensor | None = None):
    """(v→a, a→v) per-sample losses of paired embeddings (cosine similarities / temperature).

    ``cross_logits`` (B, B) [i, j] = score(v_i, a_j) replaces the cosine cross-modal logits when
    the pair score is not a dot product (e.g. audio-guided pooling of the visual map).
    """
    v, a = F.normalize(v, dim=1), F.normalize(a, dim=1)
    cross = v @ a.T / temperature if cross_logits is None else cross_logits
    wv = v @ v.T / temperature if within else None
    wa = a @ a.T / temperature if within else None
    return remoulded_from_logits(cross, wv), remoulded_from_logits(cross.T, wa)
