"""LRW-layout lip-reading data: index, mouth-ROI cache, torch dataset (real LRW and lip-words).

Layout: ``<root>/lipread_mp4/WORD/{train,val,test}/WORD_00001.mp4`` (``<root>`` may also be the
``lipread_mp4`` folder itself); the label is the word folder. A synthetic set's ``meta.csv`` adds
the speaker of each clip (real LRW names none: speaker metrics are then left out).

Mouth ROI (:func:`crop_mouth`): LRW clips are 256² faces at a fixed position, so — as LRW papers
do — the mouth is the fixed box rows 115–211, columns 79–175 (96², :data:`LRW_MOUTH_BOX`). A video
of at most :data:`MAX_ROI_SIDE` pixels a side is taken to be a mouth ROI already (the lip-words
clips are; a non-square one gives its centre square). Any other video is a face video: OpenCV's
Haar frontal-face cascade finds the face in its middle frame and the mouth is the square
:data:`MOUTH_IN_FACE` places in that box (its lower third), kept for the whole clip as LRW's box
is; no face found is an error naming the file. The ROI is converted to grey and resized to
``roi_size``. Each clip is decoded once into a cache (grey ROI frames + int16 audio); files that
cannot be used are listed in ``bad``, not fatal.
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
MAX_ROI_SIDE = 128
# The mouth inside a Haar face box (x, y, w, h), which spans brows to chin: a square of side 0.5·w
# centred at (x + 0.5·w, y + 0.8·h) — the lower third of the face, lips and a margin around them.
MOUTH_IN_FACE = {"centre_x": 0.5, "centre_y": 0.8, "side": 0.5}


class NoMouthError(ValueError):
    """No face (hence no mouth) was found in a face video."""


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


def mouth_box(face: tuple[int, int, int, int], height: int, width: int) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of the mouth square :data:`MOUTH_IN_FACE` places in a face box (x, y, w, h),
    shifted to lie inside the frame."""
    x, y, w, h = face
    side = max(2, min(int(round(MOUTH_IN_FACE["side"] * w)), height, width))
    cx, cy = x + MOUTH_IN_FACE["centre_x"] * w, y + MOUTH_IN_FACE["centre_y"] * h
    x0 = int(np.clip(round(cx - side / 2), 0, width - side))
    y0 = int(np.clip(round(cy - side / 2), 0, height - side))
    return y0, y0 + side, x0, x0 + side


def crop_mouth(frames_rgb: np.ndarray) -> tuple[np.ndarray, str]:
    """(the mouth region of (T, H, W, 3) frames, how it was found) — see the module docstring.
    Raises :class:`NoMouthError` for a face video in which no face is found."""
    t, h, w = frames_rgb.shape[:3]
    if (h, w) == (LRW_SIDE, LRW_SIDE):
        y0, y1, x0, x1 = LRW_MOUTH_BOX
        return frames_rgb[:, y0:y1, x0:x1], "LRW's fixed box in its 256² faces"
    if max(h, w) <= MAX_ROI_SIDE:
        side = min(h, w)
        y0, x0 = (h - side) // 2, (w - side) // 2
        how = "the centre square of the frame" if h != w else "the whole frame"
        return frames_rgb[:, y0:y0 + side, x0:x0 + side], how
    from avlab.data.uploads import detect_face

    face = detect_face(np.ascontiguousarray(frames_rgb[t // 2]))
    if face is None:
        raise NoMouthError(f"no face found in the middle frame of a {w}×{h} video (OpenCV Haar), so no mouth to "
                           f"read; crop the video to the mouth (at most {MAX_ROI_SIDE} px) or to LRW's 256² framing")
    y0, y1, x0, x1 = mouth_box(face, h, w)
    return frames_rgb[:, y0:y1, x0:x1], f"the lower third of the face OpenCV's Haar cascade found ({x1 - x0}² px)"


def mouth_roi(frames_rgb: np.ndarray, roi_size: int) -> np.ndarray:
    """(T, roi, roi) uint8 grey mouth ROI of (T, H, W, 3) frames (see :func:`crop_mouth`)."""
    import cv2

    grey = crop_mouth(frames_rgb)[0].mean(axis=-1).astype(np.float32)
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
    except NoMouthError as exc:
        return media.MediaError(path, str(exc)).to_dict(clip.path)
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
    stamp = [(c.path, media.modified_ns(root / c.path)) for c in clips]
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
    tmp = out.with_name(f"{out.stem}.{os.getpid()}.tmp.npz")  # per process: two jobs may build one cache at once
    np.savez(tmp, frames=np.stack([r["frames"] for r in kept]), audio=np.stack([r["audio"] for r in kept]),
             paths=np.array([r["path"] for r in kept]), bad=np.array(json.dumps(bad)))
    os.replace(tmp, out)
    return out
