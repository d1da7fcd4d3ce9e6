"""Cross-modal instance discrimination (CID): symmetric InfoNCE within the batch."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(anchor: torch.Tensor, positive: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per-sample InfoNCE: anchor i against every positive j, target j = i. Returns (B,).

    >>> x = torch.eye(3)
    >>> bool(info_nce(x, x, 0.03).max() < 1e-6)  # each anchor matches only its own positive
    True
    """
    logits = F.normalize(anchor, dim=1) @ F.normalize(positive, dim=1).T / temperature
    return F.cross_entropy(logits, torch.arange(len(anchor), device=anchor.device), reduction="none")


def cross_modal_info_nce(voice: torch.Tensor, face: torch.Tensor, temperature: float = 0.03):
    """(voice→face, face→voice) per-sample losses; CID's loss is their sum, averaged over the batch."""
    return info_nce(voice, face, temperature), info_nce(face, voice, temperature)
