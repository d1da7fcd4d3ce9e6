"""Lip-reading encoders: per-frame front-ends and a multi-scale temporal network (ADC-SSL, §2.2).

* :class:`VisualFrontEnd`: a 3D conv stem (5×7×7, as LRW front-ends) over the grey mouth clip,
  then a 2D ResNet trunk applied to every frame → one feature per video frame.
* :class:`AudioFrontEnd`: 1D convs over MFCC whose strides (2 × 2) bring 4 audio frames (10 ms)
  to one video frame (40 ms) → one feature per video frame, aligned with the visual ones.
* :class:`MultiScaleTCN`: residual blocks of parallel temporal convolutions with several kernel
  sizes and dilations (short and long context at once).
* :class:`LipEncoder`: front-end → TCN → average pooling over time → linear: a clip embedding.
  ``frames(x)`` (per-frame front-end features), ``temporal(f)`` and ``features(x)`` expose each
  stage, so a method can contrast short windows of frame features and whole clips, and the
  protocol can train a back-end on the frozen front-end.

Registered encoders carry ``example_input = (in_channels, shape)`` for the registry-wide tests.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from avlab.models.registry import register_model
from avlab.models.resnet import BasicBlock


class VisualFrontEnd(nn.Module):
    """(B, C, T, H, W) → (B, T, out_dim)."""

    def __init__(self, in_channels: int = 1, widths=(16, 32, 64, 128), blocks=(1, 1, 1, 1), max_pool: bool = False):
        super().__init__()
        # Stride 1 in time keeps one feature per frame; 2 in space. LRW's 88² crops add a max-pool.
        self.stem = nn.Sequential(
            nn.Conv3d(in_channels, widths[0], (5, 7, 7), (1, 2, 2), (2, 3, 3), bias=False), nn.BatchNorm3d(widths[0]),
            nn.ReLU(inplace=True), *([nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))] if max_pool else []))
        layers, c = [], widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks)):
            for j in range(n):
                layers.append(BasicBlock(c, w, stride=2 if (j == 0 and i > 0) else 1))
                c = w
        self.trunk = nn.Sequential(*layers)
        self.out_dim = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)  # (B, C, T, H', W')
        b, c, t = y.shape[:3]
        y = self.trunk(y.transpose(1, 2).reshape(b * t, c, *y.shape[3:]))  # every frame through the 2D trunk
        return y.mean(dim=(2, 3)).view(b, t, -1)


class AudioFrontEnd(nn.Module):
    """(B, n_mfcc, 4·T) → (B, T, out_dim); also accepts (B, 1, n_mfcc, 4·T) (the one-channel
    spectrogram shape a two-stream method may hand over)."""

    def __init__(self, in_channels: int = 13, width: int = 64, out_dim: int = 128):
        super().__init__()

        def block(c_in, c_out, stride):
            return [nn.Conv1d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm1d(c_out), nn.ReLU(inplace=True)]

        self.net = nn.Sequential(*block(in_channels, width, 1), *block(width, width, 2), *block(width, out_dim, 2),
                                 *block(out_dim, out_dim, 1))
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = x.squeeze(1)
        return self.net(x).transpose(1, 2)


class MultiScaleTCN(nn.Module):
    """(B, T, C) → (B, T, C): ``layers`` residual blocks, each the sum of parallel temporal convs
    over (kernel, dilation) branches, then a 1×1 mix (same length: padding keeps T)."""

    def __init__(self, dim: int, branches=((3, 1), (5, 1), (3, 2)), layers: int = 2, dropout: float = 0.1):
        super().__init__()
        self.blocks = nn.ModuleList()
        for _ in range(layers):
            convs = nn.ModuleList([nn.Conv1d(dim, dim, k, padding=d * (k - 1) // 2, dilation=d, bias=False)
                                   for k, d in branches])
            self.blocks.append(nn.ModuleDict({"convs": convs, "mix": nn.Sequential(
                nn.BatchNorm1d(dim * len(branches)), nn.ReLU(inplace=True), nn.Dropout(dropout),
                nn.Conv1d(dim * len(branches), dim, 1), nn.BatchNorm1d(dim))}))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.transpose(1, 2)
        for blk in self.blocks:
            y = self.act(y + blk["mix"](torch.cat([conv(y) for conv in blk["convs"]], dim=1)))
        return y.transpose(1, 2)


class LipEncoder(nn.Module):
    """Front-end → multi-scale TCN → mean over time → linear (``features``) → optional head."""

    def __init__(self, frontend: nn.Module, embed_dim: int = 128, proj_dim: int | None = None, tcn_layers: int = 2):
        super().__init__()
        self.frontend = frontend
        self.tcn = MultiScaleTCN(frontend.out_dim, layers=tcn_layers)
        self.fc = nn.Linear(frontend.out_dim, embed_dim)
        self.proj = nn.Sequential(nn.ReLU(inplace=True), nn.Linear(embed_dim, proj_dim)) if proj_dim else nn.Identity()
        self.frame_dim, self.embed_dim, self.out_dim = frontend.out_dim, embed_dim, proj_dim or embed_dim

    def frames(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, frame_dim) per-frame front-end features."""
        return self.frontend(x)

    def temporal(self, f: torch.Tensor) -> torch.Tensor:
        """(B, T, frame_dim) → clip features (B, embed_dim): TCN, average pooling, linear."""
        return self.fc(self.tcn(f).mean(dim=1))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.temporal(self.frames(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.features(x))


@register_model
def lip_video_tiny(in_channels: int = 1, embed_dim: int = 128, proj_dim: int | None = 128) -> LipEncoder:
    """The CPU default for mouth ROIs (~28² crops): ~0.8 M parameters, 128-d frame features."""
    return LipEncoder(VisualFrontEnd(in_channels, (16, 32, 64, 128)), embed_dim, proj_dim)


@register_model
def lip_video_resnet18(in_channels: int = 1, embed_dim: int = 512, proj_dim: int | None = 512) -> LipEncoder:
    """LRW-style: 3D stem + max-pool + ResNet-18 trunk (88² crops), 512-d frame features (GPU)."""
    return LipEncoder(VisualFrontEnd(in_channels, (64, 128, 256, 512), (2, 2, 2, 2), max_pool=True), embed_dim,
                      proj_dim, tcn_layers=3)


@register_model
def lip_audio_tiny(in_channels: int = 13, embed_dim: int = 128, proj_dim: int | None = 128) -> LipEncoder:
    """MFCC front-end at the video rate, 128-d frame features (matches lip_video_tiny)."""
    return LipEncoder(AudioFrontEnd(in_channels, 64, 128), embed_dim, proj_dim)


@register_model
def lip_audio_base(in_channels: int = 13, embed_dim: int = 512, proj_dim: int | None = 512) -> LipEncoder:
    """MFCC front-end with 512-d frame features (matches lip_video_resnet18)."""
    return LipEncoder(AudioFrontEnd(in_channels, 256, 512), embed_dim, proj_dim, tcn_layers=3)


lip_video_tiny.example_input = lip_video_resnet18.example_input = (1, (2, 1, 6, 28, 28))
lip_audio_tiny.example_input = lip_audio_base.example_input = (13, (2, 13, 24))
