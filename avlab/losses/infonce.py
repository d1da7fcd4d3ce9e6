"""Cross-modal instance discrimination (CID): symmetric InfoNCE within the batch."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(anchor: torch.Tensor, positive: torch.Tensor, temperature: float, offset: int = 0) -> torch.Tensor:
    """Per-sample InfoNCE: anchor i against every positive j, target j = i + ``offset``. Returns (B,).

    Under data parallelism ``positive`` is the global batch gathered from every process (the
    negatives of all of them) and the local anchors are its rows ``offset … offset + B``.

    >>> x = torch.eye(3)
    >>> bool(info_nce(x, x, 0.03).max() < 1e-6)  # each anchor matches only its own positive
    True
    """
    logits = F.normalize(anchor, dim=1) @ F.normalize(positive, dim=1).T / temperature
    target = torch.arange(len(anchor), device=anchor.device) + offset
    return F.cross_entropy(logits, target, reduction="none")


def cross_modal_info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float = 0.03,
                         a_all: torch.Tensor | None = None, b_all: torch.Tensor | None = None, offset: int = 0):
    """(a→b, b→a) per-sample losses of two modalities' paired embeddings (e.g. voice→face and
    face→voice); CID's loss is their sum, averaged over the batch. ``a_all`` / ``b_all``: the
    global batch gathered across processes (default: the local one), local rows at ``offset``."""
    a_all = a if a_all is None else a_all
    b_all = b if b_all is None else b_all
    return info_nce(a, b_all, temperature, offset), info_nce(b, a_all, temperature, offset)
