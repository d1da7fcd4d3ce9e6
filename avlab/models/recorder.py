"""Attention maps as first-class outputs, recorded with forward hooks (the ``Recorder`` pattern of
lucidrains/vit-pytorch): any module's attention can be captured without changing its forward.

A method computes attention through :class:`AttentionMap` modules (a softmax over the trailing
axes, e.g. the H·W positions of a frame); ``with Recorder(model) as rec: model(batch)`` then
holds every such module's output by its module name. ``match`` records other modules too (any
``(name, module) -> bool``), e.g. a third-party attention layer.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn


class AttentionMap(nn.Module):
    """Softmax over the last ``dims`` axes jointly (``dims=2``: over H·W), shape kept."""

    def __init__(self, dims: int = 1):
        super().__init__()
        self.dims = dims

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        flat = scores.flatten(-self.dims) if self.dims > 1 else scores
        return flat.softmax(dim=-1).view_as(scores)

    def extra_repr(self) -> str:
        return f"dims={self.dims}"


def is_attention(name: str, module: nn.Module) -> bool:
    return isinstance(module, AttentionMap)


class Recorder:
    """Context manager: records the outputs of ``model``'s modules that ``match`` (detached, on
    their device). ``maps`` maps a module name to its output in the last forward pass;
    ``history`` to the list of outputs over every pass while recording."""

    def __init__(self, model: nn.Module, match: Callable[[str, nn.Module], bool] = is_attention):
        self.model, self.match = model, match
        self.history: dict[str, list[torch.Tensor]] = {}
        self._hooks = []

    def __enter__(self) -> "Recorder":
        for name, module in self.model.named_modules():
            if self.match(name, module):
                self._hooks.append(module.register_forward_hook(self._hook(name)))
        if not self._hooks:
            raise ValueError(f"{type(self.model).__name__} has no module to record (no AttentionMap, nothing matches)")
        return self

    def _hook(self, name: str):
        def record(_module, _inputs, output):
            self.history.setdefault(name, []).append(output.detach())
        return record

    def __exit__(self, *exc) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []

    @property
    def maps(self) -> dict[str, torch.Tensor]:
        return {k: v[-1] for k, v in self.history.items()}

    def clear(self) -> None:
        self.history = {}
