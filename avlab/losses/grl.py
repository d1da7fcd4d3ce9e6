"""Gradient reversal (DANN) and ADC-SSL's "momentum" reversal strength.

:func:`grad_reverse` is the identity forward and multiplies the gradient by −λ backward: a
classifier on top learns normally while the features below are pushed to defeat it. λ ramps
with training progress p ∈ [0, 1] as ``2 / (1 + e^(−10 p)) − 1`` (Ganin & Lempitsky), so early,
random adversaries do not disturb the encoder. The momentum GRL (our reading of ADC-SSL, DESIGN
§2.2) smooths that ramp by an exponential moving average, λ ← m·λ + (1 − m)·ramp(p).
Everything is tensor arithmetic: no host sync, and λ lives on the model's device.
"""
from __future__ import annotations

import torch


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lam):
        ctx.save_for_backward(lam)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        (lam,) = ctx.saved_tensors
        return -lam.to(grad.dtype) * grad, None


def grad_reverse(x: torch.Tensor, lam) -> torch.Tensor:
    """``x`` forward; ``−lam · grad`` backward (``lam`` a float or a scalar tensor, no gradient)."""
    lam = torch.as_tensor(lam, dtype=x.dtype, device=x.device).detach()
    return _Reverse.apply(x, lam)


def ramp(p):
    """DANN's schedule ``2 / (1 + e^(−10 p)) − 1``: 0 at p = 0, → 1 as p → 1.

    >>> round(float(ramp(torch.tensor(0.0))), 6), round(float(ramp(torch.tensor(1.0))), 4)
    (0.0, 0.9999)
    """
    p = torch.as_tensor(p, dtype=torch.float32)
    return 2.0 / (1.0 + torch.exp(-10.0 * p)) - 1.0


def momentum_lambda(prev: torch.Tensor, p, momentum: float) -> torch.Tensor:
    """One EMA step of the reversal strength: ``momentum · prev + (1 − momentum) · ramp(p)``."""
    return momentum * prev + (1.0 - momentum) * ramp(p).to(prev.device, prev.dtype)
