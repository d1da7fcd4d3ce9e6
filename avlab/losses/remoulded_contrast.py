"""CMAC's remoulded contrast (DESIGN §2.3): InfoNCE whose denominator holds, for the positive
pair (v_i, a_i), the cross-modal negatives a_j *and* the within-modal negatives v_j (j ≠ i);
symmetrically for a_i. With ``within=False`` it is plain symmetric cross-modal InfoNCE (CID).

Under DDP the negatives are every process's batch: pass the gathered embeddings (``v_all``,
``a_all``, differentiable, as :func:`avlab.dist.gather` returns them) and where the local rows
sit in them (``offset``), as open_clip's ``gather_features`` does for CLIP's loss.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def remoulded_from_logits(cross: torch.Tensor, within: torch.Tensor | None, offset: int = 0) -> torch.Tensor:
    """Per-anchor loss (B,) from ``cross`` (B, N) anchor-i-vs-other-modality-j logits (the positive
    at column ``offset + i``) and ``within`` (B, N) anchor-i-vs-same-modality-j logits (column
    ``offset + i``, the anchor with itself, is left out), or None for no within-modal negatives."""
    target = torch.arange(len(cross), device=cross.device) + offset
    logits = cross
    if within is not None:
        itself = F.one_hot(target, within.shape[1]).bool()
        logits = torch.cat([cross, within.masked_fill(itself, float("-inf"))], dim=1)
    return F.cross_entropy(logits, target, reduction="none")


def remoulded_contrast(v: torch.Tensor, a: torch.Tensor, temperature: float = 0.07, within: bool = True,
                       cross_logits=None, v_all: torch.Tensor | None = None, a_all: torch.Tensor | None = None,
                       offset: int = 0):
    """(v→a, a→v) per-sample losses of paired embeddings (cosine similarities / temperature).

    ``v_all`` / ``a_all`` (N, D): the embeddings of every process (default: the local ones), with
    the local rows at ``offset``. ``cross_logits`` replaces the cosine cross-modal logits when the
    pair score is not a dot product of the embeddings (e.g. the visual map pooled per pair): a pair
    ``(va, av)`` of (B, N) logits — local v_i against every a_j, local a_i against every v_j — or
    one local (B, B) tensor [i, j] = score(v_i, a_j), read both ways.
    """
    if isinstance(cross_logits, torch.Tensor):
        cross_logits = (cross_logits, cross_logits.T)
    v, a = F.normalize(v, dim=1), F.normalize(a, dim=1)
    v_all = v if v_all is None else F.normalize(v_all, dim=1)
    a_all = a if a_all is None else F.normalize(a_all, dim=1)
    cross_va, cross_av = cross_logits or (v @ a_all.T / temperature, a @ v_all.T / temperature)
    want_va, want_av = (len(v), len(a_all)), (len(a), len(v_all))
    if tuple(cross_va.shape) != want_va or tuple(cross_av.shape) != want_av or offset + len(v) > len(a_all):
        raise ValueError(f"remoulded_contrast: cross logits are {tuple(cross_va.shape)} / {tuple(cross_av.shape)}, "
                         f"expected {want_va} / {want_av} — local anchors against every candidate, the local rows "
                         f"at offset {offset} (local pair scores need local negatives; gathered ones need logits "
                         "against every process's batch)")
    wv = v @ v_all.T / temperature if within else None
    wa = a @ a_all.T / temperature if within else None
    return remoulded_from_logits(cross_va, wv, offset), remoulded_from_logits(cross_av, wa, offset)
