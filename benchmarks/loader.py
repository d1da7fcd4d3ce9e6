"""Is data loading the bottleneck? Clips/s the DataLoader delivers (0, 1, 2 workers) against the
clips/s the training step consumes, on one task's data with the default encoders; prints JSON.

    python benchmarks/loader.py [--data data/talking-faces-standard] [--method cid] [--batches 40]

The loader is timed alone (iterating batches, nothing trained); the step is timed alone on batches
already in memory (forward, backward, optimizer step). The loader keeps up when its clips/s with
the default number of workers exceeds the step's.
"""
import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from avlab.cli import ensure_profile_set
from avlab.data.loader import make_loader
from avlab.registry import TASKS
from avlab.runs import TrainConfig, build_method, default_workers
from avlab.train import resolve_task


def loader_clips_per_s(ds, batch_size: int, workers: int, batches: int) -> float:
    loader, sampler = make_loader(ds, batch_size, seed=0, workers=workers)
    sampler.set_epoch(0)
    it = iter(loader)
    next(it)  # worker start-up is paid once per run, not per batch
    start, n = time.perf_counter(), 0
    for _, batch in zip(range(batches), it):
        n += len(batch["index"])
    return n / (time.perf_counter() - start)


def step_clips_per_s(method, batches: list[dict], repeats: int) -> float:
    opt = torch.optim.Adam(method.parameters(), lr=1e-3)
    method.train()
    method.training_step(batches[0])[0].backward()  # warm-up (allocations, kernels)
    start, n = time.perf_counter(), 0
    for r in range(repeats):
        batch = batches[r % len(batches)]
        loss, _ = method.training_step(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        n += len(batch["index"])
    return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/talking-faces-standard")
    ap.add_argument("--profile", default="standard", help="generated at --data if missing")
    ap.add_argument("--method", default="cid")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    ensure_profile_set(Path(args.data), args.profile, progress=False)
    cfg = resolve_task(TrainConfig(method=args.method, data=args.data, batch_size=args.batch_size))
    task = TASKS.get(cfg.task)
    ds = task.train_dataset(cfg.data, cfg.task_config(), workers=2, progress=False)
    loader = {str(w): round(loader_clips_per_s(ds, args.batch_size, w, args.batches), 1) for w in args.workers}
    method = build_method(cfg, task.data_spec(ds))
    batches = [ds.collate([ds[(0, i)] for i in range(b * args.batch_size, (b + 1) * args.batch_size)])
               for b in range(4)]
    step = step_clips_per_s(method, batches, repeats=args.batches // 2)
    print(json.dumps({
        "benchmark": "loader", "task": cfg.task, "data": args.data, "method": args.method,
        "batch_size": args.batch_size, "loader_clips_per_s": loader, "step_clips_per_s": round(step, 1),
        "default_workers": default_workers(), "torch_threads": torch.get_num_threads(),
        "loader_keeps_up": loader.get(str(min(default_workers(), max(args.workers))), 0) > step,
        "machine": f"{platform.machine()} {os.cpu_count()} cores"}, indent=1))


if __name__ == "__main__":
    main()
