"""Short-term cross-modal contrast (ADC-SSL): a short visual window against the audio window at
the same time, with the other times of the same clip and the windows of other clips as negatives.

Windows are average-pooled frame features (:func:`windows`: 5 frames = 0.2 s by default in the
method). The loss is InfoNCE over the chosen negatives (the "noise" of noise-contrastive
estimation: an assumption, since the paper's exact form is not public); ``negatives`` restricts
them to the same clip (``"same_clip"``: only time discriminates — no speaker or word shortcut)
or to other clips (``"other_clips"``), ``"all"`` being both.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

NEGATIVES = ("all", "same_clip", "other_clips")


def windows(frames: torch.Tensor, size: int, stride: int) -> torch.Tensor:
    """(B, T, C) per-frame features → (B, W, C) means over windows of ``size`` frames every
    ``stride`` frames (W = (T − size) // stride + 1).

    >>> windows(torch.arange(6.0).view(1, 6, 1), 2, 2).flatten().tolist()
    [0.5, 2.5, 4.5]
    """
    if frames.shape[1] < size:
        raise ValueError(f"clips of {frames.shape[1]} frames are shorter than the {size}-frame window")
    return F.avg_pool1d(frames.transpose(1, 2), size, stride).transpose(1, 2)


def short_term_nce(anchor: torch.Tensor, positive: torch.Tensor, temperature: float = 0.1,
                   negatives: str = "all") -> torch.Tensor:
    """(B, W) losses: anchor window (b, t) against every positive-modality window (b', t') allowed
    by ``negatives``, target (b, t). Inputs (B, W, D), compared by cosine / ``temperature``."""
    if negatives not in NEGATIVES:
        raise ValueError(f"negatives must be one of {NEGATIVES}, got {negatives!r}")
    b, w, _ = anchor.shape
    logits = (F.normalize(anchor, dim=-1).reshape(b * w, -1) @ F.normalize(positive, dim=-1).reshape(b * w, -1).T
              / temperature)
    clip = torch.arange(b, device=anchor.device).repeat_interleave(w)
    same = clip[:, None] == clip[None, :]
    eye = torch.eye(b * w, dtype=torch.bool, device=anchor.device)
    if negatives == "same_clip":
        logits = logits.masked_fill(~same, float("-inf"))
    elif negatives == "other_clips":
        logits = logits.masked_fill(same & ~eye, float("-inf"))
    target = torch.arange(b * w, device=anchor.device)
    return F.cross_entropy(logits, target, reduction="none").view(b, w)
