"""Audio features through torchaudio transforms (torchaudio is used for transforms only)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch


@dataclass(frozen=True)
class MelConfig:
    """Log-mel settings; defaults are CMPC's (64 mels, 16 kHz, 100 ms window, 10 ms hop)."""

    sample_rate: int = 16_000
    n_mels: int = 64
    win_ms: float = 100.0
    hop_ms: float = 10.0

    @property
    def win_length(self) -> int:
        return int(self.sample_rate * self.win_ms / 1000)

    @property
    def hop_length(self) -> int:
        return int(self.sample_rate * self.hop_ms / 1000)


@lru_cache(maxsize=8)
def _mel(cfg: MelConfig):
    import torchaudio

    n_fft = 1 << (cfg.win_length - 1).bit_length()
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=cfg.sample_rate, n_fft=n_fft, win_length=cfg.win_length, hop_length=cfg.hop_length,
        n_mels=cfg.n_mels, power=2.0)


def log_mel(wave: torch.Tensor, cfg: MelConfig = MelConfig(), normalize: bool = True) -> torch.Tensor:
    """Log-mel spectrogram (…, n_mels, frames) of a waveform (…, samples).

    ``normalize`` subtracts each band's mean over time (cepstral mean normalisation: it removes
    the channel — microphone, room — at the price of the long-term spectrum).

    >>> log_mel(torch.zeros(16000)).shape
    torch.Size([64, 101])
    """
    spec = torch.log(_mel(cfg)(wave) + 1e-6)
    return spec - spec.mean(dim=-1, keepdim=True) if normalize else spec


@lru_cache(maxsize=8)
def _mfcc(sample_rate: int, n_mfcc: int, win_ms: float, hop_ms: float):
    import torchaudio

    win, hop = int(sample_rate * win_ms / 1000), int(sample_rate * hop_ms / 1000)
    return torchaudio.transforms.MFCC(sample_rate=sample_rate, n_mfcc=n_mfcc,
                                      melkwargs={"n_fft": 512, "win_length": win, "hop_length": hop, "n_mels": 40})


def mfcc(wave: torch.Tensor, sample_rate: int = 16_000, n_mfcc: int = 13, win_ms: float = 25.0,
         hop_ms: float = 10.0) -> torch.Tensor:
    """MFCC (…, n_mfcc, frames); ADC-SSL's default is 13 coefficients, 25 ms window, 10 ms hop."""
    return _mfcc(sample_rate, n_mfcc, win_ms, hop_ms)(wave)
