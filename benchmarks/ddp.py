"""Data parallelism on this machine: 1 vs 2 gloo processes — training samples/s, and whether the
first step of 2 processes equals one process on the same global batch; prints JSON.

    python benchmarks/ddp.py [--data data/talking-faces-quick] [--method cmpc] [--epochs 2]

Both runs train the same global batch (``--batch-size``) for ``--epochs`` epochs through
``avlab train --nproc N`` (torchrun; gloo on CPU). Samples/s is the median of the epochs after
the first. On a 2-core machine two processes share the cores that one process's threads use,
so the figure shows the overhead of gathering, not a speed-up; on N GPUs it scales with N.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from avlab import ddp_check
from avlab.cli import ensure_profile_set


def samples_per_s(nproc: int, args, out: Path) -> float:
    cmd = [sys.executable, "-m", "avlab", "train", "--nproc", str(nproc), "--method", args.method, "--data", args.data,
           "--out", str(out), "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--workers", "1",
           "--val-every", "0", "--quiet"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    return statistics.median(r["clips_per_s"] for r in rows[1:] or rows)


def first_step_difference(method: str, tmp: Path) -> float:
    out = tmp / "ddp.pt"
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                    "-m", "avlab.ddp_check", str(out), method], check=True, capture_output=True, text=True)
    single_method = ddp_check.make(method)
    single = ddp_check.one_step(single_method, ddp_check.global_batch(args.method), single_method.training_step)
    return ddp_check.compare(single, torch.load(out))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/talking-faces-quick")
    ap.add_argument("--method", default="cmpc")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    ensure_profile_set(Path(args.data), "quick", progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        speed = {str(n): round(samples_per_s(n, args, tmp / f"n{n}"), 1) for n in (1, 2)}
        diffs = {m: first_step_difference(m, tmp) for m in ("cid", "cmpc", "supervised")}
    print(json.dumps({"benchmark": "ddp", "backend": "gloo", "data": args.data, "method": args.method,
                      "global_batch": args.batch_size, "samples_per_s": speed,
                      "first_step_max_relative_difference": {m: float(f"{d:.2e}") for m, d in diffs.items()},
                      "machine": f"{platform.machine()} {os.cpu_count()} cores"}, indent=1))


if __name__ == "__main__":
    main()
