"""CMAC's attention consistency (DESIGN §2.3): the attention a branch computes on its own (α)
should agree with the one the other modality guides it to (β).

Pure functions of attention distributions (rows that sum to one over their last axis, e.g. the
H·W positions of a frame or the F bins of a spectrogram).
"""
from __future__ import annotations

import torch

EPS = 1e-8
DISTANCES = ("kl", "reverse_kl", "js", "l2")


def kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p‖q) per row: Σ p log(p / q), with 0·log 0 = 0. Returns (...,)."""
    return torch.sum(torch.where(p > 0, p * (torch.log(p.clamp_min(EPS)) - torch.log(q.clamp_min(EPS))),
                                 torch.zeros_like(p)), dim=-1)


def attention_distance(target: torch.Tensor, attention: torch.Tensor, distance: str = "kl") -> torch.Tensor:
    """Per-row distance between a target β and an attention α: ``kl`` = KL(β‖α) (the default),
    ``reverse_kl`` = KL(α‖β), ``js`` = Jensen–Shannon, ``l2`` = squared Euclidean."""
    if distance == "kl":
        return kl(target, attention)
    if distance == "reverse_kl":
        return kl(attention, target)
    if distance == "js":
        m = 0.5 * (target + attention)
        return 0.5 * kl(target, m) + 0.5 * kl(attention, m)
    if distance == "l2":
        return torch.sum((target - attention) ** 2, dim=-1)
    raise ValueError(f"unknown attention distance {distance!r}; choose one of {DISTANCES}")


def attention_consistency(attention: torch.Tensor, target: torch.Tensor, distance: str = "kl",
                          stop_grad_target: bool = False) -> torch.Tensor:
    """Mean over the batch of distance(β, α), the attention maps flattened to (B, N).

    ``stop_grad_target`` detaches β, so only α learns to follow it (β then acts as a teacher).
    """
    b = attention.shape[0]
    target = target.detach() if stop_grad_target else target
    return attention_distance(target.reshape(b, -1), attention.reshape(b, -1), distance).mean()
