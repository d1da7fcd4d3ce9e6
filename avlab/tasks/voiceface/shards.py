"""``avlab prepare shards`` for voice-face data: each clip pre-decoded (its audio as 16 kHz int16,
``frames_per_clip`` face frames at the training size) into WebDataset shards that
:class:`~avlab.data.voxceleb.VoiceFaceDataset` reads like the raw layout."""
from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

from avlab.data.manifest import write_manifest
from avlab.data.shards import write_shards
from avlab.data.voxceleb import decode_clip, index_dataset

SPLITS = ("train", "val", "seen_heard", "unseen_unheard")
COPIED = ("lists", "oracle.json", "oracle_version.json", "meta.csv", "vox2_meta.csv", "latents")  # small files the protocol reads


def clip_fields(job) -> dict:
    """A clip's shard fields from ``(root, clip, frames_per_clip, face_size)`` (runs in a worker)."""
    root, clip, frames_per_clip, size = job
    audio, frames = decode_clip(root, clip, frames_per_clip, size)
    return {"audio.npy": audio, "frames.npy": frames, "meta.json": dataclasses.asdict(clip)}


def prepare_shards(data: str | os.PathLike, out: str | os.PathLike, task_cfg, splits=SPLITS, shard_size: int = 256,
                   frames_per_clip: int = 4, workers: int = 2, progress: bool = True) -> Path:
    """Write ``splits`` of ``data`` as shards under ``out`` (resumable), with the lists and the
    oracle copied beside them so that training and evaluation can use ``out`` as ``--data``."""
    data, out = Path(data).resolve(), Path(out)
    index = index_dataset(data, workers=workers, progress=progress)
    clips = index.split(*splits)
    if not clips:
        raise ValueError(f"no clips of split(s) {list(splits)} in {data}")
    items = [(c.path.rsplit(".", 1)[0], (str(data), c, frames_per_clip, task_cfg.face_size)) for c in clips]
    info = {"task": "voice-face", "source": str(data), "splits": list(splits), "source_files": [c.path for c in clips],
            "preprocessing": {"face_size": task_cfg.face_size, "frames_per_clip": frames_per_clip,
                              "audio": "16 kHz mono int16"}, "index_bad": index.bad}
    write_shards(items, clip_fields, out, shard_size, info, workers, progress)
    for name in COPIED:
        src, dst = data / name, out / name
        if src.is_dir() and not dst.exists():
            shutil.copytree(src, dst)
        elif src.is_file():
            shutil.copy2(src, dst)
    write_manifest(out, "voice-face", format="shards", source=str(data), face_size=task_cfg.face_size)
    return out
