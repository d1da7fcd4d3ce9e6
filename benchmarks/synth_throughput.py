"""Generation and decoding speed of a synthetic benchmark; prints JSON.

    python benchmarks/synth_throughput.py [--benchmark talking-faces|lip-words|sounding-objects]
                                          [--profile quick] [--workers 2]

Figures: clips/s generated (and wall time) for the profile on W workers; frames/s decoded by
decord (random access, all frames) and by PyAV (sequential), and audio decode clips/s, on the
first ``--decode-clips`` clips of ``meta.csv``.
"""
import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import pandas as pd

from avlab.data import media
from avlab.registry import TASKS


def owner(benchmark: str):
    for task in TASKS.values():
        if benchmark in task.benchmarks:
            return task
    raise SystemExit(f"unknown benchmark {benchmark!r}; the tasks generate "
                     f"{sorted(b for t in TASKS.values() for b in t.benchmarks)}")


def decode_speed(paths: list[Path]) -> dict:
    frames, timings = 0, {}
    for name, fn in (("decord", media.read_frames), ("pyav", media.read_frames_pyav), ("audio_pyav", media.read_audio)):
        t0 = time.perf_counter()
        for p in paths:
            out = fn(p)
            if name == "decord":
                frames += len(out)
        timings[name] = time.perf_counter() - t0
    return {"decode_clips": len(paths), "decode_frames": frames,
            "decord_frames_per_s": round(frames / timings["decord"], 1),
            "pyav_frames_per_s": round(frames / timings["pyav"], 1),
            "audio_decode_clips_per_s": round(len(paths) / timings["audio_pyav"], 1)}


def clip_paths(root: Path, meta: pd.DataFrame) -> list[Path]:
    """Clip files in ``meta.csv`` order: a ``path`` column (talking-faces, lip-words) or VGGSound's
    ``video/<file>.mp4`` (sounding-objects)."""
    if "path" in meta:
        return [root / p for p in meta.path]
    return [root / "video" / f"{f}.mp4" for f in meta.file]


def main():
    import avlab.tasks  # noqa: F401  (registers the tasks)

    ap = argparse.ArgumentParser()
    ap.add_argument("--benchmark", default="talking-faces")
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--decode-clips", type=int, default=100)
    args = ap.parse_args()
    task = owner(args.benchmark)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        root = task.generate(args.benchmark, Path(tmp) / "set", profile=args.profile, workers=args.workers,
                             progress=False)
        gen_s = time.perf_counter() - t0
        meta = pd.read_csv(root / "meta.csv")
        size_mb = sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 2**20
        decoding = decode_speed(clip_paths(root, meta)[: args.decode_clips])
    print(json.dumps({
        "benchmark": args.benchmark, "task": task.name, "profile": args.profile, "workers": args.workers,
        "clips": len(meta), "size_mb": round(size_mb, 1), "generate_seconds": round(gen_s, 2),
        "generate_clips_per_s": round(len(meta) / gen_s, 2), **decoding,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }, indent=1))


if __name__ == "__main__":
    main()
