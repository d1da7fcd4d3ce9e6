"""Generation and decoding speed of the talking-faces benchmark; prints JSON.

    python benchmarks/synth_throughput.py [--profile quick] [--workers 2]

Figures: clips/s generated (and wall time) for the profile on W workers; frames/s decoded by
decord (random access, all frames) and by PyAV (sequential), and audio decode clips/s.
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
from avlab.data.synth.talking_faces import TalkingFacesConfig, generate


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--decode-clips", type=int, default=100)
    args = ap.parse_args()
    cfg = TalkingFacesConfig.from_profile(args.profile)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        root = generate(cfg, Path(tmp) / "tf", workers=args.workers, progress=False)
        gen_s = time.perf_counter() - t0
        meta = pd.read_csv(root / "meta.csv")
        paths = [root / p for p in meta.path[: args.decode_clips]]
        frames = int(meta.n_frames[: args.decode_clips].sum())
        timings = {}
        for name, fn in (("decord", media.read_frames), ("pyav", media.read_frames_pyav), ("audio_pyav", media.read_audio)):
            t0 = time.perf_counter()
            for p in paths:
                fn(p)
            timings[name] = time.perf_counter() - t0
    print(json.dumps({
        "profile": args.profile, "workers": args.workers, "clips": len(meta), "identities": cfg.identities,
        "face_px": cfg.size, "speech_minutes": round(float(meta.duration.sum()) / 60, 2),
        "generate_seconds": round(gen_s, 2), "generate_clips_per_s": round(len(meta) / gen_s, 2),
        "decode_clips": len(paths), "decode_frames": frames,
        "decord_frames_per_s": round(frames / timings["decord"], 1),
        "pyav_frames_per_s": round(frames / timings["pyav"], 1),
        "audio_decode_clips_per_s": round(len(paths) / timings["audio_pyav"], 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }, indent=1))


if __name__ == "__main__":
    main()
