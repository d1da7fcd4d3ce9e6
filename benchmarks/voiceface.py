"""CID vs CMPC on the talking-faces benchmark, equal budgets, several seeds; prints JSON.

    python benchmarks/voiceface.py [--profile standard] [--epochs 12] [--seeds 0 1 2] [--out runs/bench-voiceface]

For each method and seed: train (same epochs, batch, optimiser, encoders), evaluate on the
unseen-unheard lists, report mean ± std over seeds of verification AUC (U, G), 1:2 matching
(U, G, both directions) and retrieval mAP (both directions), beside chance (random embeddings
through the same lists) and the oracle, with the share of the chance-to-oracle gap closed and
the training speed (clips/s). Existing runs in --out are reused, so an interrupted benchmark
resumes.
"""
import argparse
import json
import os
import platform
from pathlib import Path

import numpy as np

from avlab.cli import ensure_profile_set
from avlab.eval.run_eval import evaluate_run
from avlab.eval.tree import flatten
from avlab.train import TrainConfig, read_metrics, train_unless_done

METRICS = ["verification/U/auc", "verification/G/auc", "matching_1to2/v2f/U", "matching_1to2/v2f/G",
           "matching_1to2/f2v/U", "matching_1to2/f2v/G", "retrieval_map/v2f", "retrieval_map/f2v"]


def run_one(method: str, seed: int, args) -> dict:
    out = Path(args.out) / f"{method}-seed{seed}"
    method_args = {}
    if method == "cmpc":
        method_args = {"cluster_warmup_epochs": max(1, args.epochs // 3), "cluster_every": 2}
    cfg = TrainConfig(method=method, data=args.data, out=str(out), epochs=args.epochs, batch_size=args.batch_size,
                      seed=seed, method_args=method_args)
    train_unless_done(cfg, progress=not args.quiet)
    result = json.loads((out / "eval.json").read_text()) if (out / "eval.json").exists() else \
        evaluate_run(out, progress=not args.quiet)
    speed = [m["clips_per_s"] for m in read_metrics(out)[1:]] or [m["clips_per_s"] for m in read_metrics(out)]
    return {"metrics": flatten(result["metrics"]["unseen_unheard"]), "chance": flatten(result["chance"]["unseen_unheard"]),
            "oracle": flatten(result.get("oracle", {}).get("unseen_unheard", {})), "clips_per_s": float(np.median(speed))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="standard")
    ap.add_argument("--data", help="dataset root (default: data/talking-faces-<profile>, generated if missing)")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", default=["cid", "cmpc"])
    ap.add_argument("--out", default="runs/bench-voiceface")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    args.data = args.data or f"data/talking-faces-{args.profile}"
    ensure_profile_set(Path(args.data), args.profile, progress=not args.quiet)

    per_method, chance, oracle = {}, None, None
    for method in args.methods:
        runs = [run_one(method, s, args) for s in args.seeds]
        chance, oracle = runs[0]["chance"], runs[0]["oracle"]
        summary = {}
        for k in METRICS:
            vals = [r["metrics"][k] for r in runs]
            summary[k] = {"mean": round(float(np.mean(vals)), 4), "std": round(float(np.std(vals)), 4),
                          "per_seed": [round(v, 4) for v in vals]}
        gaps = [(summary[k]["mean"] - chance[k]) / (oracle[k] - chance[k]) for k in METRICS if k in oracle]
        summary["gap_closed_mean"] = round(float(np.mean(gaps)), 4) if gaps else None
        summary["train_clips_per_s"] = round(float(np.mean([r["clips_per_s"] for r in runs])), 1)
        per_method[method] = summary
    print(json.dumps({
        "benchmark": "voiceface", "split": "unseen_unheard", "data": args.data, "epochs": args.epochs,
        "batch_size": args.batch_size, "seeds": args.seeds,
        "chance": {k: round(chance[k], 4) for k in METRICS}, "oracle": {k: round(oracle[k], 4) for k in METRICS if k in oracle},
        "methods": per_method, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }, indent=1))


if __name__ == "__main__":
    main()
