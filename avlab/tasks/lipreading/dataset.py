"""The lip-reading dataset: mouth-ROI video and MFCC of LRW-layout clips, keyed ``(epoch, i)``.

A batch holds ``video`` (B, 1, T, crop, crop) in [-1, 1], ``audio`` (B, n_mfcc, 4·T) MFCC (25 ms
window, 10 ms hop: four audio frames per 40-ms video frame, per-clip mean/variance normalised),
``index``, ``label`` (the word) and ``speaker`` (−1 where the data does not say). Training takes a
random crop of the ROI, a random horizontal flip and a brightness/contrast jitter of the video,
gain and noise on the audio; evaluation takes the centre crop. Sample ``i``'s randomness is a
function of (``seed``, epoch, i) only (see :mod:`avlab.data.loader`).
"""
from __future__ import annotations

import json
import os

import numpy as np
import torch

from avlab.data.features import mfcc
from avlab.data.loader import seeded_subset
from avlab.data.lrw import FPS, SAMPLE_RATE, build_cache, index_lrw
from avlab.data.voxceleb import augment_wave


class LipWordsDataset:
    def __init__(self, root: str | os.PathLike, splits=("train",), roi_size: int = 32, crop_size: int = 28,
                 n_mfcc: int = 13, win_ms: float = 25.0, hop_ms: float = 10.0, train: bool = True,
                 augment: bool = True, workers: int = 2, progress: bool = True):
        if crop_size > roi_size:
            raise ValueError(f"crop_size {crop_size} is larger than roi_size {roi_size}")
        per_frame = 1000.0 / FPS / hop_ms
        if abs(per_frame - round(per_frame)) > 1e-9:
            raise ValueError(f"hop_ms {hop_ms} does not divide the {1000 / FPS:g}-ms video frame")
        self.root, self.train, self.augment = str(root), train, augment
        self.roi_size, self.crop_size = roi_size, crop_size
        self.n_mfcc, self.win_ms, self.hop_ms, self.mfcc_per_frame = n_mfcc, win_ms, hop_ms, int(round(per_frame))
        self.seed, self.epoch = 0, 0
        every = index_lrw(root)
        self.words = sorted({c.word for c in every})  # labels over all splits: the same ids everywhere
        self.speakers = sorted({c.speaker for c in every if c.speaker})
        clips = [c for c in every if c.split in splits]
        if not clips:
            raise ValueError(f"no clips of split(s) {tuple(splits)} in {root}")
        data = np.load(build_cache(root, clips, roi_size, workers, progress))
        order = {p: k for k, p in enumerate(data["paths"].tolist())}
        self.bad = json.loads(str(data["bad"]))
        self.clips = [c for c in clips if c.path in order]  # undecodable clips are left out
        rows = np.array([order[c.path] for c in self.clips])
        self._frames, self._audio = data["frames"][rows], data["audio"][rows]
        self._labels()

    def _labels(self) -> None:
        word_id, spk_id = {w: i for i, w in enumerate(self.words)}, {s: i for i, s in enumerate(self.speakers)}
        self.labels = np.array([word_id[c.word] for c in self.clips])
        self.speaker_ids = np.array([spk_id.get(c.speaker, -1) for c in self.clips])

    # --- the dataset protocol of avlab.tasks.base ------------------------------------------------
    def __len__(self) -> int:
        return len(self.clips)

    @property
    def n_classes(self) -> int:
        return len(self.words)

    def sample_names(self) -> list[str]:
        return [c.path for c in self.clips]

    def subset(self, fraction: float, seed: int = 0) -> None:
        """Keep a seeded random ``fraction`` of the clips (at least one): low-shot labels."""
        keep = seeded_subset(len(self.clips), fraction, seed)
        self.clips = [self.clips[i] for i in keep]
        self._frames, self._audio = self._frames[keep], self._audio[keep]
        self._labels()

    def video(self, i: int, rng: np.random.Generator | None = None) -> torch.Tensor:
        """(1, T, crop, crop) float in [-1, 1]: a random (training) or the centre crop."""
        frames = self._frames[i]
        side, c = self.roi_size, self.crop_size
        y, x = (rng.integers(side - c + 1, size=2) if rng is not None else ((side - c) // 2,) * 2)
        v = torch.from_numpy(np.ascontiguousarray(frames[:, y:y + c, x:x + c])).float()[None] / 127.5 - 1.0
        if rng is not None and self.augment:
            if rng.random() < 0.5:
                v = v.flip(-1)
            v = (v * float(rng.uniform(0.8, 1.2)) + float(rng.uniform(-0.15, 0.15))).clamp(-1.0, 1.0)
        return v

    def wave(self, i: int, rng: np.random.Generator | None = None) -> np.ndarray:
        w = self._audio[i].astype(np.float32) / 32767.0
        return augment_wave(w[None], rng)[0] if rng is not None and self.augment else w

    def __getitem__(self, key) -> dict:
        epoch, i = key if isinstance(key, tuple) else (self.epoch, key)
        rng = np.random.default_rng([self.seed, epoch, i]) if self.train else None
        return {"video": self.video(i, rng), "wave": torch.from_numpy(self.wave(i, rng)), "index": i,
                "label": int(self.labels[i]), "speaker": int(self.speaker_ids[i])}

    def features(self, waves: torch.Tensor, n_frames: int) -> torch.Tensor:
        """(B, n_mfcc, mfcc_per_frame·n_frames) MFCC of (B, samples), normalised per clip and coefficient."""
        m = mfcc(waves, SAMPLE_RATE, self.n_mfcc, self.win_ms, self.hop_ms)
        n = self.mfcc_per_frame * n_frames
        m = torch.nn.functional.pad(m, (0, max(0, n - m.shape[-1])))[..., :n]
        return (m - m.mean(-1, keepdim=True)) / (m.std(-1, keepdim=True) + 1e-5)

    def collate(self, items: list[dict]) -> dict:
        """Stack samples; the batch's MFCC in one call (much cheaper than per clip)."""
        video = torch.stack([x["video"] for x in items])
        return {"video": video, "audio": self.features(torch.stack([x["wave"] for x in items]), video.shape[2]),
                "index": torch.tensor([x["index"] for x in items]), "label": torch.tensor([x["label"] for x in items]),
                "speaker": torch.tensor([x["speaker"] for x in items])}
