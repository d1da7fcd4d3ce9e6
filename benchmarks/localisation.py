"""CMAC vs CID vs CMAC's ablations on sounding-objects, equal budgets: prints JSON.

    python benchmarks/localisation.py --profile quick --epochs 40 --seeds 0 --out runs/bench-localisation

Every run: same data, epochs, batch size, learning rate and encoders' family; figures from the
task's protocol (cIoU@0.5, AUC, frequency grounding, probes) beside chance and the oracle.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from avlab.eval.run_eval import evaluate_run
from avlab.methods.cmac import BASELINES
from avlab.registry import TASKS
from avlab.runs import TrainConfig
from avlab.train import train

CONFIGS = {"cmac": ("cmac", {}), "cid": ("cid", {}),
           **{f"cmac-{name}": ("cmac", options) for name, options in BASELINES.items()}}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--profile", default="quick")
    p.add_argument("--data", help="an existing sounding-objects set (default: generate one under --out)")
    p.add_argument("--out", default="runs/bench-localisation")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--configs", nargs="+", default=list(CONFIGS))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    out = Path(args.out)
    task = TASKS.get("sound-localisation")
    t0 = time.time()
    data = Path(args.data) if args.data else task.generate("sounding-objects", out / f"data-{args.profile}",
                                                           profile=args.profile, workers=args.workers, progress=False)
    summary = {"data": str(data), "profile": args.profile, "epochs": args.epochs, "batch_size": args.batch_size,
               "seeds": args.seeds, "generate_s": round(time.time() - t0, 1), "runs": {}}
    for name in args.configs:
        method, options = CONFIGS[name]
        for seed in args.seeds:
            run = out / f"{name}-seed{seed}"
            t = time.time()
            if not (run / "model.safetensors").exists():
                cfg = TrainConfig(method=method, data=str(data), out=str(run), epochs=args.epochs,
                                  batch_size=args.batch_size, seed=seed, workers=args.workers, device=args.device,
                                  method_args=dict(options))
                train(cfg, resume=(run / "checkpoint.safetensors").exists(), progress=False)
            result = evaluate_run(run, progress=False, device=args.device)
            summary["runs"][f"{name}/seed{seed}"] = {"headline": task.headline(result), "seconds": round(time.time() - t, 1)}
            summary.setdefault("chance", result["chance"]["test"])
            summary.setdefault("oracle", result.get("oracle", {}).get("test"))
            print(json.dumps({name: summary["runs"][f"{name}/seed{seed}"]}), flush=True)
    (out / "localisation.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
