"""LRW-layout lip-reading data: index, mouth-ROI cache, torch dataset (real LRW and lip-words).

Layout: ``<root>/lipread_mp4/WORD/{train,val,test}/WORD_00001.mp4`` (``<root>`` may also be the
``lipread_mp4`` folder itself); the label is the word folder. A synthetic set's ``meta.csv`` adds
the speaker of each clip (real LRW names none: speaker metrics are then left out).

Mouth ROI: LRW clips are 256² faces at a fixed position, so — as LRW papers do — the mouth is the
fixed box rows 115–211, columns 79–175 (96², :data:`LRW_MOUTH_BOX`), converted to grey and resized
to ``roi_size``. A smaller video is taken to be a mouth ROI already (the lip-words clips are)
and only resized. Each clip is decoded once into a cache (grey ROI frames + int16 audio); files
that cannot be decoded are listed in ``bad``, not fatal.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from avlab.data import media
from avlab.parallel import imap_watched

FPS = 25
N_FRAMES = 29
SAMPLE_RATE = 16_000
CLIP_SAMPLES = N_FRAMES * SAMPLE_RATE // FPS
LRW_SIDE = 256
LRW_MOUTH_BOX = (115, 211, 79, 175)  # y0, y1, x0, x1 in LRW's 256² frames
SPLITS = ("train", "val", "test")
CACHE_VERSION = 1


@dataclass(frozen=True)
class LipClip:
    path: str  # relative to the root
    word: str
    split: str
    speaker: str  # "" when the data does not say


def words_dir(root: Path) -> Path | None:
    """The folder holding the WORD/ folders, or None when ``root`` is not LRW-shaped."""
    for cand in (root / "lipread_mp4", root):
        if cand.is_dir() and any((d / s).is_dir() for d in _subdirs(cand) for s in SPLITS):
            return cand
    return None


def _subdirs(folder: Path, limit: int = 50) -> list[Path]:
    out = []
    for d in folder.iterdir():
        if d.is_dir():
            out.append(d)
            if len(out) >= limit:  # recognising a layout must not walk a whole tree
                break
    return out


def index_lrw(root: str | os.PathLike) -> list[LipClip]:
    """Every ``WORD/{split}/*.mp4`` clip under ``root``, sorted; speakers from ``meta.csv`` if any."""
    root = Path(root)
    base = words_dir(root) if root.is_dir() else None
    if base is None:
        raise FileNotFoundError(f"{root}: not an LRW layout (expected lipread_mp4/WORD/{{train,val,test}}/WORD_00001.mp4)")
    speakers = {}
    if (root / "meta.csv").exists():
        with open(root / "meta.csv", newline="") as f:
            speakers = {r["path"]: r.get("speaker", "") for r in csv.DictReader(f)}
    clips = []
    for path in sorted(base.glob("*/*/*.mp4")):
        word, split = path.parts[-3], path.parts[-2]
        if split in SPLITS and not path.name.startswith(".tmp-"):
            rel = str(path.relative_to(root))
            clips.append(LipClip(rel, word, split, speakers.get(rel, "")))
    if not clips:
        raise FileNotFoundError(f"no clips under {base} (expected WORD/{{train,val,test}}/WORD_00001.mp4)")
    return clips


def read_duration(txt: str | os.PathLike) -> float | None:
    """The word's ``Duration:`` from an LRW ``.txt`` (seconds), or None when absent."""
    for line in Path(txt).read_text().splitlines():
        if line.startswith("Duration:"):
            try:
                return float(line.split()[1])
            except (IndexError, ValueError):
                raise ValueError(f"{txt}: cannot read the duration from {line!r}") from None
    return None


def mouth_roi(frames_rgb: np.ndarray, roi_size: int) -> np.ndarray:
    """(T, roi, roi) uint8 grey mouth ROI of (T, H, W, 3) frames (see the module docstring)."""
    import cv2

    grey = frames_rgb.mean(axis=-1).astype(np.float32)
    if grey.shape[1:] == (LRW_SIDE, LRW_SIDE):
        y0, y1, x0, x1 = LRW_MOUTH_BOX
        grey = grey[:, y0:y1, x0:x1]
    if grey.shape[1:] != (roi_size, roi_size):
        grey = np.stack([cv2.resize(g, (roi_size, roi_size), interpolation=cv2.INTER_AREA) for g in grey])
    return np.clip(grey.round(), 0, 255).astype(np.uint8)


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """``x`` cut or padded (repeating its last item) to ``n`` along axis 0."""
    if len(x) >= n:
        return x[:n]
    return np.concatenate([x, np.repeat(x[-1:], n - len(x), axis=0)]) if len(x) else np.zeros((n, *x.shape[1:]), x.dtype)


def _decode_one(args) -> dict:
    root, clip, roi_size = args
    path = Path(root) / clip.path
    try:
        frames = mouth_roi(media.read_frames(path), roi_size)
        audio = media.read_audio(path)
    except media.MediaError as exc:
        return exc.to_dict(clip.path)
    audio = np.pad(audio, (0, max(0, CLIP_SAMPLES - len(audio))))[:CLIP_SAMPLES]
    return {"path": clip.path, "frames": fit_length(frames, N_FRAMES),
            "audio": (np.clip(audio, -1, 1) * 32767).astype(np.int16)}


def cache_dir() -> Path:
    d = Path(os.environ.get("AVLAB_CACHE", Path.home() / ".cache" / "avlab"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def build_cache(root: str | os.PathLike, clips: list[LipClip], roi_size: int, workers: int = 2,
                progress: bool = True) -> Path:
    """Decode ``clips`` once into an ``.npz`` (``frames`` (K, 29, roi, roi) uint8, ``audio`` (K,
    18560) int16, ``paths``, ``bad`` as JSON); returns its path. Keyed by the root, the ROI size
    and the clips' paths and modification times, so a regenerated set is decoded again."""
    root = Path(root).resolve()
    stamp = [(c.path, (root / c.path).stat().st_mtime_ns if (root / c.path).exists() else 0) for c in clips]
    key = hashlib.sha1(json.dumps([str(root), roi_size, CACHE_VERSION, stamp]).encode()).hexdigest()[:16]
    out = cache_dir() / f"lrw-{key}.npz"
    if out.exists():
        return out
    args = [(str(root), c, roi_size) for c in clips]
    decoded = list(tqdm(imap_watched(_decode_one, args, workers, name=lambda a: a[1].path, chunksize=8),
                        total=len(args), desc="decoding mouth ROIs into the cache", disable=not progress))
    kept = [r for r in decoded if "error" not in r]
    bad = [r for r in decoded if "error" in r]
    if not kept:
        raise ValueError(f"none of the {len(clips)} clips under {root} could be decoded"
                         + (f", e.g. {bad[0]['path']}: {bad[0]['reason']}" if bad else ""))
    tmp = out.with_name(out.stem + ".tmp.npz")
    np.savez(tmp, frames=np.stack([r["frames"] for r in kept]), audio=np.stack([r["audio"] for r in kept]),
             paths=np.array([r["path"] for r in kept]), bad=np.array(json.dumps(bad)))
    os.replace(tmp, out)
    return out
