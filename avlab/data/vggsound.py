"""VGGSound-layout data for sound-source localisation: index, boxes, torch dataset.

Layout: ``<root>/vggsound.csv`` (``video_id,start_seconds,label,split`` — VGGSound's, no header;
a header row is tolerated) and the clips under ``<root>/video/<video_id>_<start:06d>.mp4`` (the
unpadded ``<video_id>_<start>.mp4`` is also found). Optional: ``vggss.json`` (VGG-SS boxes:
``[{"file", "class", "bbox": [[x1, y1, x2, y2], …]}]`` in [0, 1] on the annotated key frame), and
from the synthetic generator ``meta.csv`` (frame counts, bands) and ``latents/boxes.npz``
(per-frame pixel boxes). Clips listed in the CSV but missing on disk are reported in ``missing``.

:class:`LocalisationDataset` serves (frame, log-mel, index, label) from a cache of decoded audio
and five key frames per clip (:func:`avlab.data.voxceleb.build_cache`), built once.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avlab.data import media
from avlab.data.features import MelConfig, log_mel
from avlab.data.loader import seeded_subset
from avlab.parallel import imap_watched

KEY_FRAMES = 5  # cached frames per clip; the middle one is the annotated/evaluated key frame


@dataclass(frozen=True)
class Clip:
    path: str  # relative to the root
    file: str  # <video_id>_<start:06d>, the key of the box annotations
    label: str
    split: str  # train | test
    n_frames: int


def key_frame_indices(n_frames: int, k: int = KEY_FRAMES) -> np.ndarray:
    """The frames the cache keeps (the same rule as :func:`avlab.data.voxceleb.build_cache`)."""
    return np.linspace(0, n_frames - 1, k + 2)[1:-1].round().astype(int)


def key_frame(n_frames: int) -> int:
    """The evaluated frame: the middle one of :func:`key_frame_indices`."""
    return int(key_frame_indices(n_frames)[KEY_FRAMES // 2])


def read_csv_rows(root: Path) -> list[dict]:
    path = root / "vggsound.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: a VGGSound root holds vggsound.csv and video/")
    rows = []
    with open(path, newline="") as f:
        for n, rec in enumerate(csv.reader(f)):
            if not rec or (n == 0 and rec[0] == "video_id"):
                continue
            if len(rec) < 4:
                raise ValueError(f"{path}, line {n + 1}: expected video_id,start_seconds,label,split, got {rec}")
            rows.append({"video_id": rec[0], "start": int(float(rec[1])), "label": rec[2], "split": rec[3].strip()})
    return rows


def _clip_path(root: Path, video_id: str, start: int) -> str | None:
    for name in (f"{video_id}_{start:06d}.mp4", f"{video_id}_{start}.mp4"):
        if (root / "video" / name).exists():
            return f"video/{name}"
    return None


def _probe_frames(args) -> int:
    root, rel = args
    return media.probe(Path(root) / rel).n_frames


def index_clips(root: str | os.PathLike, workers: int = 2) -> tuple[list[Clip], list[str]]:
    """(clips present on disk, CSV rows whose clip is missing). Frame counts come from
    ``meta.csv`` when the set has one, else from the files' headers."""
    root = Path(root)
    known_frames = {}
    if (root / "meta.csv").exists():
        with open(root / "meta.csv", newline="") as f:
            known_frames = {r["file"]: int(r["n_frames"]) for r in csv.DictReader(f)}
    found, missing = [], []
    for r in read_csv_rows(root):
        file = f"{r['video_id']}_{r['start']:06d}"
        rel = _clip_path(root, r["video_id"], r["start"])
        (found if rel else missing).append((file, rel, r))
    need = [(str(root), rel) for file, rel, _ in found if file not in known_frames]
    probed = dict(zip([rel for _, rel in need], imap_watched(_probe_frames, need, workers, name=lambda a: a[1])))
    clips = [Clip(rel, file, r["label"], r["split"], known_frames.get(file) or probed[rel]) for file, rel, r in found]
    return clips, [f"video/{file}.mp4" for file, _, _ in missing]


def read_boxes(root: str | os.PathLike) -> dict[str, list[list[float]]]:
    """VGG-SS boxes by clip file, normalised to [0, 1] (empty when the root has none)."""
    path = Path(root) / "vggss.json"
    if not path.exists():
        return {}
    try:
        entries = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    return {e["file"]: e["bbox"] for e in entries if e.get("bbox")}


def decode_file(path: str | os.PathLike, image_size: int, notes: list | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(float32 16 kHz mono audio, (KEY_FRAMES, S, S, 3) RGB key frames) of one video file outside a
    dataset (e.g. a demo upload), decoded by the code that fills the dataset's cache — the audio
    rounded through int16 as the cache stores it — so a file gives the same input either way; a
    MediaError when it cannot be used."""
    from types import SimpleNamespace

    from avlab.data.voxceleb import decode_clip

    path = Path(path)
    audio, frames = decode_clip(path.parent, SimpleNamespace(path=path.name), KEY_FRAMES, image_size, notes)
    return audio.astype(np.float32) / 32767.0, frames


def evaluation_batch(audio: np.ndarray, frames: np.ndarray, crop_seconds: float, mel: MelConfig = MelConfig()) -> dict:
    """A batch of one clip decoded by :func:`decode_file` in the evaluation view, as
    ``LocalisationDataset(train=False)`` serves and collates it: the middle key frame, and the log-mel
    of the first ``crop_seconds`` of sound (zero-padded when shorter)."""
    import torch

    from avlab.data.voxceleb import frame_to_tensor

    crop = int(crop_seconds * mel.sample_rate)
    wave = np.pad(audio, (0, max(0, crop - len(audio))))[:crop]
    return {"image": frame_to_tensor(frames[KEY_FRAMES // 2])[None],
            "audio": log_mel(torch.from_numpy(np.ascontiguousarray(wave))[None], mel)}


class LocalisationDataset:
    """(image, audio log-mel, clip index, class index) samples of one or more splits.

    Training takes a random key frame (randomly flipped, augmented) and a random ``crop_seconds``
    window; evaluation the middle key frame and the first window. A sample's randomness depends
    on (``seed``, epoch, i) only. ``classes`` is every label of the CSV, sorted, so train and test
    labels share indices.
    """

    def __init__(self, root: str | os.PathLike, splits=("train",), image_size: int = 64, crop_seconds: float = 1.0,
                 train: bool = True, mel: MelConfig = MelConfig(), workers: int = 2, progress: bool = True,
                 augment: bool = True):
        from avlab.data.voxceleb import Index, build_cache

        self.root = Path(root)
        all_clips, self.missing = index_clips(self.root, workers)
        self.classes = sorted({c.label for c in all_clips})
        self.clips = [c for c in all_clips if c.split in splits]
        if not self.clips:
            raise ValueError(f"no clips of split(s) {splits} in {self.root} (vggsound.csv lists {len(all_clips)} "
                             "clips present on disk)")
        self.train, self.image_size, self.mel, self.augment = train, image_size, mel, augment
        self.seed, self.epoch = 0, 0
        self.crop = int(crop_seconds * mel.sample_rate)
        # the resolved root keys the cache: "data/x" and "/abs/data/x" share one
        cache = build_cache(Index(str(self.root.resolve()), [], []), self.clips, image_size, KEY_FRAMES, workers,
                            progress)
        data = np.load(cache)
        kept = set(data["paths"].tolist())  # clips that failed to decode are left out of the cache
        self.bad = json.loads(str(data["bad"])) if "bad" in data else []
        self.clips = [c for c in self.clips if c.path in kept]
        self.label_of = {name: i for i, name in enumerate(self.classes)}
        self._audio, self._offsets, self._frames = data["audio"], data["offsets"], data["frames"]
        self._audio_parts = list(zip(self._offsets[:-1], self._offsets[1:]))

    def subset(self, fraction: float, seed: int = 0) -> None:
        """Keep a seeded random ``fraction`` of the clips (at least one)."""
        keep = seeded_subset(len(self.clips), fraction, seed)
        self.clips = [self.clips[i] for i in keep]
        self._frames = self._frames[keep]
        self._audio_parts = [self._audio_parts[i] for i in keep]

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def sample_names(self) -> list[str]:
        return [c.path for c in self.clips]

    def audio(self, i: int) -> np.ndarray:
        start, end = self._audio_parts[i]
        return self._audio[start:end].astype(np.float32) / 32767.0

    def frame(self, i: int, k: int | None = None) -> np.ndarray:
        """RGB uint8 (S, S, 3) key frame ``k`` of clip ``i`` (the middle one by default)."""
        return self._frames[i, KEY_FRAMES // 2 if k is None else k]

    def image(self, i: int, rng: np.random.Generator | None = None):
        from avlab.data.voxceleb import augment_face, frame_to_tensor

        if rng is None:
            return frame_to_tensor(self.frame(i))
        img = frame_to_tensor(self.frame(i, int(rng.integers(KEY_FRAMES))))
        img = img.flip(-1) if rng.random() < 0.5 else img
        return augment_face(img, rng) if self.augment else img

    def wave(self, i: int, rng: np.random.Generator | None = None) -> np.ndarray:
        from avlab.data.voxceleb import augment_wave

        wave = np.pad(self.audio(i), (0, max(0, self.crop - len(self.audio(i)))))
        start = int(rng.integers(len(wave) - self.crop + 1)) if rng is not None else 0
        crop = wave[None, start:start + self.crop]
        return (augment_wave(crop, rng) if rng is not None and self.augment else crop)[0]

    def __getitem__(self, key) -> dict:
        import torch

        epoch, i = key if isinstance(key, tuple) else (self.epoch, key)
        rng = np.random.default_rng([self.seed, epoch, i]) if self.train else None
        return {"image": self.image(i, rng), "wave": torch.from_numpy(np.ascontiguousarray(self.wave(i, rng))),
                "index": i, "label": self.label_of[self.clips[i].label]}

    def collate(self, items: list[dict]) -> dict:
        """Stack samples; the batch's log-mels in one call."""
        import torch

        return {"image": torch.stack([x["image"] for x in items]),
                "audio": log_mel(torch.stack([x["wave"] for x in items]), self.mel),
                "index": torch.tensor([x["index"] for x in items]),
                "label": torch.tensor([x["label"] for x in items])}
