"""CMPC's recalibration: down-weight pairs whose instance agreement falls short of their
prototypes' agreement (likely false or noisy pairs), with no gradient through the weights.

ρ_i = cos(â_i, f̂_i) − agreement(i's voice prototype, i's face prototype);
μ = mean ρ + δ·std ρ (δ = −1), σ = std ρ · √κ (κ = 0.1); sort ρ ascending, g_k = N(ρ_(k); μ, σ);
w = Σ_{m≤k} g_m / Σ g — a monotone map of ρ into (0, 1].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def prototype_agreement(voice_protos: list[torch.Tensor], face_protos: list[torch.Tensor], mode: str = "mean") -> torch.Tensor:
    """Agreement (B,) between each sample's assigned voice and face prototypes over granularities.

    ``mean``: cosine of the normalised prototypes, averaged (the paper's intent). ``official``:
    raw dot products of un-normalised centroids, summed over granularities (the released code).
    """
    if mode == "mean":
        return torch.stack([(F.normalize(v, dim=1) * F.normalize(f, dim=1)).sum(1)
                            for v, f in zip(voice_protos, face_protos)]).mean(0)
    if mode == "official":
        return torch.stack([(v * f).sum(1) for v, f in zip(voice_protos, face_protos)]).sum(0)
    raise ValueError(f"unknown prototype agreement mode {mode!r} (mean | official)")


@torch.no_grad()
def recalibration_weights(voice: torch.Tensor, face: torch.Tensor, agreement: torch.Tensor,
                          delta: float = -1.0, kappa: float = 0.1) -> torch.Tensor:
    """Weights (B,) in (0, 1], monotone non-decreasing in ρ, detached from the graph."""
    rho = ((F.normalize(voice.detach(), dim=1) * F.normalize(face.detach(), dim=1)).sum(1)
           - agreement.detach()).double()  # float64: the Gaussian tails must not underflow to 0
    std = rho.std(unbiased=False)
    flat = std < 1e-8  # all pairs agree equally: no evidence to down-weight any (a tensor, not a
    std = torch.where(flat, torch.ones_like(std), std)  # host branch, so CUDA/meta steps do not sync)
    mu, sigma = rho.mean() + delta * std, std * kappa ** 0.5
    order = torch.argsort(rho)
    g = torch.exp(-0.5 * ((rho[order] - mu) / sigma) ** 2) / (sigma * (2 * torch.pi) ** 0.5)
    cdf = torch.cumsum(g, 0) / g.sum()
    w = torch.empty_like(rho)
    w[order] = cdf
    return torch.where(flat, torch.ones_like(w), w).to(voice.dtype)


def weighted_mean(per_sample: torch.Tensor, weights: torch.Tensor, total_weight: torch.Tensor | None = None,
                  world_size: int = 1) -> torch.Tensor:
    """Σ w_i L_i / Σ w_i. Under data parallelism each process holds a slice of the batch:
    ``total_weight`` is Σ w over the global batch and the local share is scaled by the number of
    processes, so that the gradients averaged across processes equal the global batch's.

    >>> float(weighted_mean(torch.tensor([1.0, 3.0]), torch.tensor([1.0, 3.0])))
    2.5
    """
    total = weights.sum() if total_weight is None else total_weight
    return world_size * (weights * per_sample).sum() / total
