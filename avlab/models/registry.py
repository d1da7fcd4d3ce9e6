"""Model registry (timm-style): ``@register_model`` names a constructor; tests iterate the registry."""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

from avlab.registry import MODELS


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    return MODELS.register(fn.__name__)(fn)


def create_model(name: str, **kwargs) -> nn.Module:
    return MODELS.get(name)(**kwargs)


def list_models() -> list[str]:
    return MODELS.names()
