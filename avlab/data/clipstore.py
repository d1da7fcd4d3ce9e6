"""Where a clip dataset's decoded clips live: an in-RAM cache or WebDataset shards on disk.

Both give a clip's audio (16 kHz int16) and its ``frames_per_clip`` face frames (uint8) by row,
so a dataset does not care which one it reads. The in-RAM ``.npz`` cache suits sets that fit in
memory (the synthetic profiles); shards (``avlab prepare shards``) keep memory flat at any size.
"""
from __future__ import annotations

import numpy as np

from avlab.data.shards import ShardReader


class CachedClips:
    """Rows of an ``.npz`` decoded-clip cache: ``audio`` (all clips, concatenated), ``offsets``,
    ``frames`` (K, F, S, S, 3)."""

    def __init__(self, data):
        self._audio, offsets, self._frames = data["audio"], data["offsets"], data["frames"]
        self._parts = list(zip(offsets[:-1], offsets[1:]))

    @property
    def frames_per_clip(self) -> int:
        return self._frames.shape[1]

    def audio(self, row: int) -> np.ndarray:
        start, end = self._parts[row]
        return self._audio[start:end]

    def frames(self, row: int) -> np.ndarray:
        return self._frames[row]


class ShardClips:
    """Rows of a shard folder, read from disk on demand (in whichever process asks)."""

    def __init__(self, reader: ShardReader):
        self.reader = reader
        self.frames_per_clip = int(reader.manifest["preprocessing"]["frames_per_clip"])

    def audio(self, row: int) -> np.ndarray:
        return self.reader.field(row, "audio.npy")

    def frames(self, row: int) -> np.ndarray:
        return self.reader.field(row, "frames.npy")
