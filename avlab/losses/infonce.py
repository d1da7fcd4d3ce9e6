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


def cross_modal_info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float = 0.03):
    """(a→b, b→a) per-sample losses of two modalities' paired embeddings (e.g. voice→face and
    face→voice); CID's loss is their sum, averaged over the batch."""
    return info_nce(a, b, temperature), info_nce(b, a, temperature)
