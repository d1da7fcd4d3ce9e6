"""Sound-source localisation metrics (DESIGN §3): cIoU per clip, cIoU@0.5, AUC of the success rate.

Definition (the one LVS, Chen et al. CVPR 2021, and EZ-VSL, Mo & Morgado ECCV 2022, both use
in their evaluation code): the heatmap is resized to the image (bilinear) and min-max
normalised; the prediction is the set of pixels in its top half; with ground truth ``gt`` (the
union of the annotated boxes, binary)

    cIoU = Σ(pred·gt) / (Σ gt + Σ pred·[gt = 0])

"cIoU@0.5" is the share of clips with cIoU ≥ 0.5 and "AUC" the area (trapezoids) under the
success rate ``mean(cIoU ≥ t)`` over t = 0, 0.05, …, 1.

"Top half" has two readings, both offered (``threshold``): ``"value"`` (default) — normalised
value ≥ 0.5, which is what min-max normalisation is for — and ``"median"`` — the 50 % of pixels
with the highest values, as the released LVS / EZ-VSL code does (``thr = sort(pred)[N // 2]``).
The median reading caps cIoU at 2·(box area / image area) for boxes under half the image, so it
suits datasets of large objects (VGG-SS, Flickr) and not small-object scenes.
"""
from __future__ import annotations

import numpy as np

THRESHOLDS = np.round(np.arange(21) * 0.05, 2)


def resize_map(heatmap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) map → (H, W) by bilinear interpolation (OpenCV, as the reference code)."""
    import cv2

    H, W = size
    return cv2.resize(np.asarray(heatmap, np.float32), (W, H), interpolation=cv2.INTER_LINEAR)


def normalise(heatmap: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1]; a constant map becomes all ones (it predicts every pixel)."""
    lo, hi = float(heatmap.min()), float(heatmap.max())
    return np.ones_like(heatmap, np.float32) if hi - lo < 1e-12 else ((heatmap - lo) / (hi - lo)).astype(np.float32)


def prediction(heatmap: np.ndarray, size: tuple[int, int], threshold: str = "value") -> np.ndarray:
    """Binary (H, W) prediction of a heatmap at image size ``size`` (see the module docstring)."""
    p = normalise(resize_map(heatmap, size))
    if threshold == "value":
        return (p >= 0.5).astype(np.float32)
    if threshold == "median":
        thr = np.sort(p.ravel())[p.size // 2]
        return (p >= thr).astype(np.float32)
    raise ValueError(f"threshold must be 'value' or 'median', got {threshold!r}")


def box_mask(boxes, size: tuple[int, int]) -> np.ndarray:
    """Binary (H, W) union of pixel boxes ``[[x1, y1, x2, y2], …]`` (a pixel is in when its centre is)."""
    H, W = size
    yy, xx = np.mgrid[:H, :W] + 0.5
    m = np.zeros((H, W), np.float32)
    for x1, y1, x2, y2 in boxes:
        m[(xx >= x1) & (xx < x2) & (yy >= y1) & (yy < y2)] = 1.0
    return m


def ciou(pred: np.ndarray, gt: np.ndarray) -> float:
    """Σ(pred·gt) / (Σ gt + Σ pred·[gt = 0]) of binary maps."""
    denom = gt.sum() + (pred * (gt == 0)).sum()
    return float((pred * gt).sum() / denom) if denom > 0 else 0.0


def clip_ciou(heatmap: np.ndarray, boxes, size: tuple[int, int], threshold: str = "value") -> float:
    return ciou(prediction(heatmap, size, threshold), box_mask(boxes, size))


def success_auc(cious) -> float:
    """Area under mean(cIoU ≥ t) over t = 0, 0.05, …, 1 (trapezoids, as sklearn.metrics.auc)."""
    c = np.asarray(cious, float)
    rates = np.array([(c >= t).mean() for t in THRESHOLDS])
    return float(np.sum((rates[1:] + rates[:-1]) / 2 * np.diff(THRESHOLDS)))


def summary(cious) -> dict[str, float]:
    c = np.asarray(cious, float)
    return {"ciou@0.5": float((c >= 0.5).mean()), "auc": success_auc(c), "mean_ciou": float(c.mean()),
            "n": int(len(c))}


def centre_prior(shape: tuple[int, int], sigma: float = 0.25) -> np.ndarray:
    """A Gaussian bump at the image centre (σ as a fraction of the side): the centre-bias baseline."""
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    return np.exp(-(((yy + 0.5) / h - 0.5) ** 2 + ((xx + 0.5) / w - 0.5) ** 2) / (2 * sigma**2)).astype(np.float32)


def box_prior_map(boxes, size: tuple[int, int], grid: tuple[int, int]) -> np.ndarray:
    """The ground-truth box averaged onto a (h, w) grid: the best map a model of that resolution
    can output (the oracle's map at the feature resolution)."""
    H, W = size
    h, w = grid
    m = box_mask(boxes, size)
    return m.reshape(h, H // h, w, W // w).mean(axis=(1, 3)) if H % h == 0 and W % w == 0 else \
        resize_map(m, (h, w))


# --- frequency grounding -------------------------------------------------------------------------
def band_mask(bands_hz, bin_edges_hz: np.ndarray) -> np.ndarray:
    """(F,) 1 where a frequency bin's centre lies inside one of the bands; ``bin_edges_hz`` (F + 1,)."""
    centres = 0.5 * (bin_edges_hz[:-1] + bin_edges_hz[1:])
    return np.any([(centres >= lo) & (centres <= hi) for lo, hi in bands_hz], axis=0).astype(np.float32)


def band_mass(attention: np.ndarray, mask: np.ndarray) -> float:
    """Share of a frequency attention's mass inside the true bands."""
    a = np.clip(np.asarray(attention, float), 0, None)
    return float((a * mask).sum() / max(a.sum(), 1e-12))


def band_ap(attention: np.ndarray, mask: np.ndarray) -> float:
    """Average precision of ranking the bins by attention against the in-band bins (NaN if none)."""
    from sklearn.metrics import average_precision_score

    if mask.sum() == 0 or mask.sum() == len(mask):
        return float("nan")
    return float(average_precision_score(mask, attention))


def mel_bin_edges_hz(n_mels: int, sample_rate: int, n_bins: int) -> np.ndarray:
    """(n_bins + 1,) Hz edges of ``n_bins`` equal groups of the HTK mel filterbank's channels
    (torchaudio's default: 0 Hz to Nyquist): what each row of a frequency map covers."""
    hz_to_mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)
    mel_to_hz = lambda m: 700.0 * (10 ** (m / 2595.0) - 1.0)
    points = mel_to_hz(np.linspace(0.0, hz_to_mel(sample_rate / 2), n_mels + 2))
    # Channel c spans points[c]..points[c + 2]; a group of channels spans from its first to its last.
    per = n_mels / n_bins
    return np.array([points[int(round(k * per))] if k < n_bins else points[n_mels + 1] for k in range(n_bins + 1)])
