"""Per-identity voices: espeak-ng speech re-voiced by a small source-filter vocoder.

espeak-ng's own voice variants and pitch settings collapse into a handful of speakers for a
speaker encoder, so we keep only what espeak does well (phonetics, timing, loudness contour) and
replace the voice. Each frame's spectral envelope is estimated by cepstral smoothing, warped in
frequency by the formant scale (vocal-tract length), tilted, and re-excited by our own glottal
source at the identity's f0 with its breathiness. Voicing comes from espeak's signal itself
(periodicity), so fricatives stay noisy and vowels stay voiced.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

SAMPLE_RATE = 16_000
_N_FFT = 512
_HOP = 80  # 5 ms
_LIFTER = 30  # cepstral cut-off in samples (~1.9 ms): keeps the envelope, drops espeak's harmonics


@dataclass(frozen=True)
class VoiceParams:
    """Physical voice of one identity (before per-clip jitter)."""

    f0_hz: float  # mean fundamental frequency
    formant_scale: float  # >1: shorter vocal tract, higher formants
    rate_wpm: int  # speaking rate given to espeak
    tilt_db_per_octave: float  # spectral tilt relative to 1 kHz (negative: darker)
    breathiness: float  # 0..1: share of aspiration noise in the voiced source


def _envelopes(spec: np.ndarray) -> np.ndarray:
    """Cepstrally smoothed magnitude envelope of each STFT frame (freq × time)."""
    log_mag = np.log(np.abs(spec) + 1e-6)
    cep = np.fft.irfft(log_mag, axis=0)
    cep[_LIFTER:-_LIFTER] = 0.0
    return np.exp(np.fft.rfft(cep, axis=0).real)


def _voicing(x: np.ndarray, n_frames: int) -> np.ndarray:
    """Per-frame voicing probability in [0, 1] from normalised autocorrelation (50–400 Hz)."""
    win = 640  # 40 ms
    pad = np.pad(x, (win // 2, win // 2 + _HOP * n_frames))
    idx = np.arange(n_frames)[:, None] * _HOP + np.arange(win)[None, :]
    frames = pad[idx] * np.hanning(win)[None, :]
    spec = np.fft.rfft(frames, n=2 * win, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :win]
    lo, hi = SAMPLE_RATE // 400, SAMPLE_RATE // 50
    peak = ac[:, lo:hi].max(axis=1) / (ac[:, 0] + 1e-9)
    energy = ac[:, 0]
    loud = energy > 1e-3 * energy.max()
    return np.clip((peak - 0.3) / 0.3, 0.0, 1.0) * loud


def _source(f0: np.ndarray, voiced: np.ndarray, breathiness: float, rng: np.random.Generator) -> np.ndarray:
    """Glottal source: band-limited pulse train at ``f0`` mixed with aspiration noise."""
    phase = np.cumsum(f0 / SAMPLE_RATE)
    pulses = np.zeros_like(f0)
    wraps = np.flatnonzero(np.diff(np.floor(phase)) > 0) + 1
    pulses[wraps] = np.sqrt(SAMPLE_RATE / f0[wraps])  # equal power whatever the f0
    noise = rng.standard_normal(len(f0))
    voiced_src = (1.0 - breathiness) * pulses + breathiness * noise
    return voiced * voiced_src + (1.0 - voiced) * noise


def f0_contour(n: int, f0_hz: float, word_starts_s: list[float], rng: np.random.Generator) -> np.ndarray:
    """Intonation: declination over the utterance, small accents on words, slow jitter."""
    t = np.arange(n) / SAMPLE_RATE
    dur = max(t[-1], 1e-3)
    contour = 1.08 - 0.16 * t / dur
    for w in word_starts_s:
        contour += rng.uniform(0.0, 0.06) * np.exp(-0.5 * ((t - w - 0.08) / 0.07) ** 2)
    slow = signal.resample(rng.standard_normal(max(4, int(dur * 8))), n) * 0.01
    return f0_hz * contour * (1.0 + slow)


def revoice(audio: np.ndarray, in_rate: int, word_starts_s: list[float], voice: VoiceParams,
            rng: np.random.Generator) -> np.ndarray:
    """Re-voice espeak speech ``audio`` (at ``in_rate``) as ``voice``; returns 16 kHz float32."""
    from math import gcd

    g = gcd(SAMPLE_RATE, in_rate)
    x = signal.resample_poly(audio.astype(np.float64), SAMPLE_RATE // g, in_rate // g)
    _, _, spec = signal.stft(x, SAMPLE_RATE, nperseg=_N_FFT, noverlap=_N_FFT - _HOP, boundary="even")
    env = _envelopes(spec)
    freqs = np.fft.rfftfreq(_N_FFT, 1.0 / SAMPLE_RATE)
    # Vocal-tract length: the new envelope at f is the old one at f / scale.
    warped = np.stack([np.interp(freqs / voice.formant_scale, freqs, e) for e in env.T], axis=1)
    tilt = (np.maximum(freqs, 100.0) / 1000.0) ** (voice.tilt_db_per_octave / 6.02)
    target = warped * tilt[:, None]

    voiced_frames = _voicing(x, spec.shape[1])
    voiced = np.interp(np.arange(len(x)), np.arange(spec.shape[1]) * _HOP, voiced_frames)
    f0 = f0_contour(len(x), voice.f0_hz, word_starts_s, rng)
    _, _, exc = signal.stft(_source(f0, voiced, voice.breathiness, rng), SAMPLE_RATE,
                            nperseg=_N_FFT, noverlap=_N_FFT - _HOP, boundary="even")
    n = min(exc.shape[1], target.shape[1])
    out_spec = exc[:, :n] * target[:, :n]
    # Keep espeak's loudness contour frame by frame.
    gain = np.linalg.norm(spec[:, :n], axis=0) / (np.linalg.norm(out_spec, axis=0) + 1e-9)
    _, y = signal.istft(out_spec * gain[None, :], SAMPLE_RATE, nperseg=_N_FFT, noverlap=_N_FFT - _HOP,
                        boundary=True)
    y = y[: len(x)]
    return (y / (np.abs(y).max() + 1e-9) * 0.8).astype(np.float32)


def room(audio: np.ndarray, snr_db: float, rt60_s: float, rng: np.random.Generator) -> np.ndarray:
    """Per-clip room: a short exponential reverb tail and coloured background noise at ``snr_db``."""
    n_ir = max(int(rt60_s * SAMPLE_RATE), 1)
    ir = rng.standard_normal(n_ir) * np.exp(-6.9 * np.arange(n_ir) / n_ir)
    ir[0] = 1.0 / 0.35
    wet = signal.fftconvolve(audio, ir * 0.35)[: len(audio)]
    noise = signal.lfilter([1.0], [1.0, -rng.uniform(0.5, 0.95)], rng.standard_normal(len(audio)))
    p_sig = np.mean(wet**2) + 1e-12
    noise *= np.sqrt(p_sig / (np.mean(noise**2) * 10 ** (snr_db / 10)))
    y = wet + noise
    return (y / (np.abs(y).max() + 1e-9) * 0.7).astype(np.float32)
