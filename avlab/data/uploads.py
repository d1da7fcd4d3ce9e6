"""Uploaded media → the encoders' inputs, through the same preprocessing as training.

A voice becomes evenly spaced ``crop_seconds`` log-mel windows of 16 kHz mono audio (as
evaluation does); a face becomes one RGB frame — a still image, or a video's middle frame —
cropped to the face found by OpenCV's Haar detector (or the centre square when none is found),
resized to the run's face size and scaled to [-1, 1]. Every way an upload can be unusable raises
:class:`UploadError`, whose message names the file (its name, never the server's path) and says
what is wrong, so the demo can show it instead of a traceback.
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avlab.data import media

AUDIO_EXTS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".webm")
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
VIDEO_EXTS = (".mp4", ".mov", ".mkv", ".avi", ".webm")
VOICE_EXTS = AUDIO_EXTS + tuple(e for e in VIDEO_EXTS if e not in AUDIO_EXTS)  # a video's sound track
FACE_EXTS = IMAGE_EXTS + VIDEO_EXTS
MIN_VOICE_SECONDS = 0.5
MAX_IMAGE_PIXELS = 40_000_000  # a decompression bomb is refused before it is decoded
# PIL warns about images over ~89 megapixels when it opens them; ours is the lower limit and refuses
# them with a message in the page, so its warning would only add a line to the server log.
warnings.filterwarnings("ignore", message="Image size .* could be decompression bomb DOS attack")


class UploadError(ValueError):
    """An upload the demo cannot use; the message is meant for the person who uploaded it."""


@dataclass(frozen=True)
class Limits:
    """What an upload may be: its size and, for audio, how much of it is listened to."""

    max_bytes: int = 50 * 1024 * 1024
    max_voice_seconds: float = 30.0
    max_gallery_files: int = 32


def check_upload(path: str | os.PathLike, allowed_exts: tuple[str, ...], limits: Limits = Limits(),
                 what: str = "file") -> Path:
    """The path, if it names a non-empty file of an allowed type within the size limit."""
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise UploadError(f"{what} {name!r} did not arrive; upload it again")
    if path.suffix.lower() not in allowed_exts:
        raise UploadError(f"{what} {name!r}: unsupported type {path.suffix or '(no extension)'}; "
                          f"use one of {', '.join(allowed_exts)}")
    size = path.stat().st_size
    if size == 0:
        raise UploadError(f"{what} {name!r} is empty")
    if size > limits.max_bytes:
        raise UploadError(f"{what} {name!r} is {size / 2**20:.1f} MB; the limit is {limits.max_bytes / 2**20:.0f} MB")
    return path


def media_problem(exc: media.MediaError, name: str, what: str) -> UploadError:
    """The decoder's reason, without the server's path (FFmpeg quotes it) or its errno."""
    reason = re.sub(r"\[Errno -?\d+\]\s*", "", exc.reason.replace(f": '{exc.path}'", "").replace(exc.path, name))
    return UploadError(f"{what} {name!r} cannot be used: {reason}")


# --- voice --------------------------------------------------------------------------------------
def read_voice(path: str | os.PathLike, limits: Limits = Limits(), sample_rate: int = 16_000) -> tuple[np.ndarray, str]:
    """(mono waveform at ``sample_rate``, a note on what was used) of an audio or video upload."""
    path = check_upload(path, VOICE_EXTS, limits, "voice")
    problems = []  # damaged packets skipped, a cut-off end: said in the page, not hidden
    try:
        wave = media.read_audio(path, sample_rate, max_seconds=limits.max_voice_seconds, notes=problems)
    except media.MediaError as exc:
        raise media_problem(exc, path.name, "voice") from None
    seconds = len(wave) / sample_rate
    if seconds < MIN_VOICE_SECONDS:
        raise UploadError(f"voice {path.name!r} is {seconds:.2f} s long; at least {MIN_VOICE_SECONDS} s is needed")
    if not np.isfinite(wave).all() or np.abs(wave).max() < 1e-4:
        raise UploadError(f"voice {path.name!r} is silent")
    capped = seconds >= limits.max_voice_seconds
    note = f"voice {path.name!r}: {seconds:.1f} s" + (f" (the first {limits.max_voice_seconds:.0f} s used)" if capped else "")
    return wave, "; ".join([note, *problems])


def voice_mels(wave: np.ndarray, crop_seconds: float, n_crops: int, mel):
    """(n_crops, n_mels, frames) log-mels of evenly spaced windows — the evaluation's voice input."""
    import torch

    from avlab.data.features import log_mel
    from avlab.data.voxceleb import even_crops

    crops = even_crops(wave.astype(np.float32), int(crop_seconds * mel.sample_rate), n_crops)
    return log_mel(torch.from_numpy(crops), mel)


# --- face ---------------------------------------------------------------------------------------
def _too_large(name: str, size: str) -> UploadError:
    return UploadError(f"face {name!r} is {size} pixels; the limit is {MAX_IMAGE_PIXELS // 1_000_000} megapixels "
                       "(scale it down and upload it again)")


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:  # reads the header only: the size is checked before decoding
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise _too_large(path.name, f"{img.width}×{img.height}")
            return np.asarray(img.convert("RGB"))
    except Image.DecompressionBombError as exc:  # PIL's own guard fires in open() above ~179 megapixels
        found = re.search(r"\((\d+) pixels\)", str(exc))
        raise _too_large(path.name, f"{int(found.group(1)) / 1e6:.0f} million" if found else "too many") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, UploadError):
            raise
        raise UploadError(f"face {path.name!r} is not a readable image") from None


def _read_middle_frame(path: Path, notes: list) -> np.ndarray:
    try:
        # By position among the frames that decode: a header's frame count may over-claim.
        return media.read_frames(path, positions=[0.5], notes=notes)[0]
    except media.MediaError as exc:
        raise media_problem(exc, path.name, "face") from None


_CASCADE = None


def detect_face(rgb: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) of the largest frontal face OpenCV's Haar cascade finds, or None."""
    import cv2

    global _CASCADE
    if _CASCADE is None:  # the cascade ships inside opencv-python-headless: nothing is downloaded
        _CASCADE = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml"))
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    scale = min(1.0, 640 / max(grey.shape))  # detection on at most 640 px: fast, and faces stay findable
    small = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else grey
    faces = _CASCADE.detectMultiScale(small, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
    if len(faces) == 0:
        return None
    x, y, w, h = max(faces, key=lambda f: f[2] * f[3])
    return tuple(int(round(v / scale)) for v in (x, y, w, h))


def square_crop(rgb: np.ndarray, box: tuple[int, int, int, int] | None, margin: float = 1.6) -> np.ndarray:
    """A square around ``box`` widened by ``margin`` (VoxCeleb's face tracks are loose crops that
    show hair and chin), clamped to the image; the centre square when ``box`` is None.

    >>> square_crop(np.zeros((100, 200, 3)), None).shape
    (100, 100, 3)
    """
    h, w = rgb.shape[:2]
    if box is None:
        side, cx, cy = min(h, w), w / 2, h / 2
    else:
        x, y, bw, bh = box
        side, cx, cy = min(int(max(bw, bh) * margin), h, w), x + bw / 2, y + bh / 2
    x0 = int(np.clip(round(cx - side / 2), 0, w - side))
    y0 = int(np.clip(round(cy - side / 2), 0, h - side))
    return rgb[y0:y0 + side, x0:x0 + side]


def read_face(path: str | os.PathLike, size: int, limits: Limits = Limits()) -> tuple[np.ndarray, str]:
    """(RGB uint8 face of ``size``×``size``, a note saying how it was cropped) of an image or video upload."""
    import cv2

    path = check_upload(path, FACE_EXTS, limits, "face")
    is_image = path.suffix.lower() in IMAGE_EXTS
    problems = []
    rgb = _read_image(path) if is_image else _read_middle_frame(path, problems)
    if min(rgb.shape[:2]) < 8:
        raise UploadError(f"face {path.name!r} is only {rgb.shape[1]}×{rgb.shape[0]} pixels")
    box = detect_face(rgb)
    source = "image" if is_image else "video's middle frame"
    how = "face detected (OpenCV Haar)" if box else "no face detected: centre crop used"
    face = cv2.resize(square_crop(rgb, box), (size, size), interpolation=cv2.INTER_AREA)
    return face, "; ".join([f"face {path.name!r} ({source}): {how}", *problems])
