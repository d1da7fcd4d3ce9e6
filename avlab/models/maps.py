"""ResNets that keep a useful feature map for attention and localisation (CMAC, DESIGN §2.3).

``resnet_tiny`` reduces a 64² frame to a 4×4 map and 64 mel bands to 4 rows: too coarse to say
where a sound is or which bands carry it. These keep the tiny widths and cost class but stride less:
``resnet_tiny_map`` stops downsampling after the third stage (64² → 8×8), ``resnet_tiny_freq``
strides over frequency once after its stem and then over time only (64 mels → 16 rows).
"""
from __future__ import annotations

import torch.nn as nn

from avlab.models.registry import register_model
from avlab.models.resnet import ResNetEncoder


@register_model
def resnet_tiny_map(in_channels: int = 3, embed_dim: int = 128, proj_dim: int | None = 128) -> ResNetEncoder:
    """resnet_tiny with an 8×8 map of a 64² frame (stride 8 overall)."""
    return ResNetEncoder(in_channels, (16, 32, 64, 128), (1, 1, 1, 1), embed_dim, proj_dim, stem_stride=2,
                         stage_strides=(1, 2, 2, 1))


@register_model
def resnet_tiny_freq(in_channels: int = 1, embed_dim: int = 128, proj_dim: int | None = 128) -> ResNetEncoder:
    """resnet_tiny for (mels, frames) inputs that keeps mels/4 frequency rows (time stride 16)."""
    return ResNetEncoder(in_channels, (16, 32, 64, 128), (1, 1, 1, 1), embed_dim, proj_dim, stem_stride=2,
                         stage_strides=(1, 2, (1, 2), (1, 2)))


PADDINGS = ("zeros", "replicate", "reflect", "circular")


def set_padding(module: nn.Module, mode: str) -> nn.Module:
    """Pad every padded convolution of ``module`` with ``mode`` (in place; returns ``module``).

    Why: zero padding marks the border — positions near the edge see zeros, so every map carries a
    position code there, and an attention that peaks on it looks like a (wrong) localisation
    (the CMAC audit found β_v peaking on the border). Replicate padding removes that code."""
    if mode not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {mode!r}")
    for conv in module.modules():
        if isinstance(conv, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and conv.padding != "valid" and any(conv.padding):
            conv.padding_mode = mode
    return module
