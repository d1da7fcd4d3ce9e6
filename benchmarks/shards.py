"""Shards vs raw decoding for voice-face data; prints JSON.

    python benchmarks/shards.py [--data data/talking-faces-quick] [--batches 20]

- write: ``avlab prepare shards`` of the training split — clips/s and bytes per clip;
- read: clips/s the DataLoader delivers (1 and 2 workers) from the shards, from the in-RAM cache,
  and decoding the raw mp4 files clip by clip;
- memory: peak resident memory of a process (and its loader workers) that reads every sample of
  a shard set once, at 1× and at 8× the training split (the same clips written 8 times) — it must
  stay flat, since only the offset index is held in memory.
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from avlab.cli import ensure_profile_set
from avlab.data.loader import make_loader
from avlab.data.shards import write_shards
from avlab.data.voxceleb import VoiceFaceDataset, decode_clip, index_dataset
from avlab.registry import TASKS
from avlab.tasks.voiceface.shards import clip_fields, prepare_shards

TRAIN = ("train",)


def loader_clips_per_s(ds, workers: int, batches: int, batch_size: int = 32) -> float:
    loader, sampler = make_loader(ds, batch_size, seed=0, workers=workers)
    sampler.set_epoch(0)
    it = iter(loader)
    next(it)
    start, n = time.perf_counter(), 0
    for _, batch in zip(range(batches), it):
        n += len(batch["index"])
    return n / (time.perf_counter() - start)


def read_everything(folder: str) -> dict:
    """Runs in a fresh process: every sample once through 2 workers; peak RSS of self and workers."""
    ds = VoiceFaceDataset(folder, TRAIN, progress=False, workers=2)
    loader, sampler = make_loader(ds, 32, seed=0, workers=2)
    sampler.set_epoch(0)
    n = sum(len(b["index"]) for b in loader)
    return {"samples": n, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "peak_rss_workers_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def replicated(data: Path, out: Path, copies: int, face_size: int) -> Path:
    clips = index_dataset(data, progress=False).split(*TRAIN)
    items = [(f"{c.path.rsplit('.', 1)[0]}-{r}", (str(data), c, 4, face_size)) for r in range(copies) for c in clips]
    write_shards(items, clip_fields, out, 256, {"task": "voice-face", "preprocessing": {"frames_per_clip": 4,
                                                                                         "face_size": face_size}},
                 workers=2, progress=False)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/talking-faces-quick")
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--read-all", help=argparse.SUPPRESS)  # the memory probe's child process
    args = ap.parse_args()
    if args.read_all:
        print(json.dumps(read_everything(args.read_all)))
        return
    data = ensure_profile_set(Path(args.data), "quick", progress=False).resolve()
    cfg = TASKS.get("voice-face").Config()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        shards = prepare_shards(data, tmp / "shards", cfg, splits=TRAIN, workers=2, progress=False)
        write_s = time.perf_counter() - start
        manifest = json.loads((shards / "shards.json").read_text())
        n, size = manifest["count"], sum(s["bytes"] for s in manifest["shards"])
        from_shards = VoiceFaceDataset(shards, TRAIN, progress=False)
        cached = VoiceFaceDataset(data, TRAIN, progress=False)
        read = {"shards": {w: round(loader_clips_per_s(from_shards, w, args.batches), 1) for w in (1, 2)},
                "ram_cache": {w: round(loader_clips_per_s(cached, w, args.batches), 1) for w in (1, 2)}}
        clips = index_dataset(data, progress=False).split(*TRAIN)[:64]
        start = time.perf_counter()
        for c in clips:
            decode_clip(str(data), c, 4, cfg.face_size)
        read["raw_decode_1_process"] = round(len(clips) / (time.perf_counter() - start), 1)
        memory = {}
        for copies in (1, 8):
            folder = replicated(data, tmp / f"x{copies}", copies, cfg.face_size) if copies > 1 else shards
            done = subprocess.run([sys.executable, __file__, "--read-all", str(folder)], capture_output=True, text=True,
                                  check=True)
            memory[f"{copies}x"] = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps({"benchmark": "shards", "data": str(data), "split": "train", "clips": n,
                      "write_clips_per_s": round(n / write_s, 1), "bytes_per_clip": round(size / n),
                      "read_clips_per_s": read, "memory_reading_everything": memory,
                      "machine": f"{platform.machine()} {os.cpu_count()} cores"}, indent=1))


if __name__ == "__main__":
    main()
