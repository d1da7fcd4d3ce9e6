"""ResNet encoders for faces (RGB frames) and voices (log-mel as a 1-channel image).

CMPC uses ResNet-34 from scratch on 224² faces and 64-mel spectrograms, 512-d. The same class
builds that (``resnet34``) and the small CPU defaults (``resnet_tiny``, ``resnet_small``); global
average pooling makes the voice encoder accept any number of time frames.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from avlab.models.registry import register_model


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out))
        self.skip = (nn.Identity() if stride == 1 and c_in == c_out else
                     nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.body(x) + self.skip(x))


class ResNetEncoder(nn.Module):
    """Conv stem → stages of basic blocks → global average pool → linear to ``embed_dim``.

    ``features(x)`` is the pooled trunk output (what CMPC evaluates on); ``forward`` adds the
    optional projection head used by the training losses.
    """

    def __init__(self, in_channels: int = 3, widths=(16, 32, 64, 128), blocks=(1, 1, 1, 1), embed_dim: int = 128,
                 proj_dim: int | None = 128, large_stem: bool = False, stem_stride: int = 1,
                 stage_strides: tuple | None = None, final_linear: bool = True):
        super().__init__()
        if large_stem:  # ImageNet-style stem for 224² inputs
            self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 7, 2, 3, bias=False), nn.BatchNorm2d(widths[0]),
                                      nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        else:  # small inputs: a 3×3 stem, strided on CPU presets to keep the first stage cheap
            self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, stem_stride, 1, bias=False), nn.BatchNorm2d(widths[0]),
                                      nn.ReLU(inplace=True))
        layers, c = [], widths[0]
        # stage_strides: each stage's first-block stride, an int or (rows, cols) — e.g. (1, 2) keeps a
        # spectrogram's frequency rows; default 1 then 2 per stage
        strides = stage_strides or (1,) + (2,) * (len(widths) - 1)
        for i, (w, n) in enumerate(zip(widths, blocks)):
            for j in range(n):
                layers.append(BasicBlock(c, w, stride=strides[i] if j == 0 else 1))
                c = w
        self.trunk = nn.Sequential(*layers)
        if not final_linear and embed_dim != c:  # the pooled trunk is the embedding: its width is fixed
            raise ValueError(f"an encoder without a final linear layer embeds in its last width, {c}; "
                             f"got embed_dim {embed_dim} (pass --embed-dim {c})")
        self.fc = nn.Linear(c, embed_dim) if final_linear else nn.Identity()
        self.proj = (nn.Sequential(nn.ReLU(inplace=True), nn.Linear(embed_dim, proj_dim)) if proj_dim else nn.Identity())
        self.embed_dim, self.out_dim = embed_dim, proj_dim or embed_dim

    def trunk_modules(self) -> list[nn.Module]:
        """Everything below the last linear layer: what low-shot recipes train slowly or freeze."""
        return [self.stem, self.trunk]

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) trunk output before pooling (attention and localisation read it)."""
        return self.trunk(self.stem(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.feature_map(x).mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.features(x))


@register_model
def resnet_tiny(in_channels: int = 3, embed_dim: int = 128, proj_dim: int | None = 128) -> ResNetEncoder:
    """~0.7 M parameters; the CPU default (stride-2 stem: a 64² face costs ~15 MFLOPs)."""
    return ResNetEncoder(in_channels, (16, 32, 64, 128), (1, 1, 1, 1), embed_dim, proj_dim, stem_stride=2)


@register_model
def resnet_tiny_nofc(in_channels: int = 3, embed_dim: int = 128, proj_dim: int | None = 128) -> ResNetEncoder:
    """resnet_tiny without its final linear layer (the pooled post-ReLU trunk, 128-d, non-negative),
    as CMPC's released ResNet-34 — for CPU studies of that choice."""
    return ResNetEncoder(in_channels, (16, 32, 64, 128), (1, 1, 1, 1), embed_dim, proj_dim, stem_stride=2,
                         final_linear=False)


resnet_tiny_nofc.embed_width = 128  # the only embed_dim it accepts


@register_model
def resnet_small(in_channels: int = 3, embed_dim: int = 256, proj_dim: int | None = 256) -> ResNetEncoder:
    return ResNetEncoder(in_channels, (32, 64, 128, 256), (2, 2, 2, 2), embed_dim, proj_dim)


@register_model
def resnet34(in_channels: int = 3, embed_dim: int = 512, proj_dim: int | None = 512) -> ResNetEncoder:
    """CMPC's encoder: ResNet-34 widths and depths, 512-d, ImageNet stem."""
    return ResNetEncoder(in_channels, (64, 128, 256, 512), (3, 4, 6, 3), embed_dim, proj_dim, large_stem=True)


@register_model
def resnet34_released(in_channels: int = 3, embed_dim: int = 512, proj_dim: int | None = 512) -> ResNetEncoder:
    """CMPC's released encoder: ResNet-34 without the final linear layer (post-ReLU average pool:
    512-d, non-negative embeddings)."""
    return ResNetEncoder(in_channels, (64, 128, 256, 512), (3, 4, 6, 3), embed_dim, proj_dim, large_stem=True,
                         final_linear=False)


resnet34_released.embed_width = 512
