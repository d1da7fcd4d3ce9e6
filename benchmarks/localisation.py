"""CMAC vs CID vs CMAC's ablations on sounding-objects, equal budgets, several seeds: prints JSON.

    avlab synth sounding-objects --profile standard --out data/sounding-objects-standard
    python benchmarks/localisation.py --data data/sounding-objects-standard --out runs/bench-loc \\
        --epochs 20 --seeds 0 1 2 --threads 1

Task options default to 64² frames and 64 mel bands (the standard set's); on the quick set (48²)
pass ``--task-args '{"augment": false, "image_size": 48}'``.

Every run: the same data, epochs, batch size, learning rate and task options (frames not augmented
by default: see ``--task-args``); figures from the task's protocol (cIoU@0.5 and AUC from β_v and
α_v, frequency grounding, probes) beside chance (the centre prior) and the oracle. ``table`` in the
JSON: each variant's mean, sd and 95 % t-interval over seeds and its difference from ``cmac``
paired by seed. Finished runs are reused (the runs resume), so an interrupted sweep picks up.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from avlab.methods.cmac import BASELINES

VARIANTS = {"cmac": ("cmac", {}), "cid": ("cid", {}),
            **{f"cmac-{name}": ("cmac", options) for name, options in BASELINES.items()}}
METRICS = ("localisation/beta_v/ciou@0.5", "localisation/beta_v/auc", "localisation/alpha_v/auc",
           "frequency/alpha_a/mass", "frequency/beta_a/mass", "probe/linear/audio", "probe/linear/image",
           "probe/knn/audio", "probe/knn/image")


def run_variant(name: str, data: str, out: Path, args) -> dict:
    from avlab.eval.run_eval import evaluate_run
    from avlab.eval.tree import flatten
    from avlab.runs import TrainConfig
    from avlab.train import train_unless_done

    method, options = VARIANTS[name]
    run = out / f"{name}-seed{args.seed}"
    t0 = time.time()
    train_unless_done(TrainConfig(method=method, data=data, out=str(run), epochs=args.epochs, batch_size=args.batch_size,
                                  lr=args.lr, seed=args.seed, workers=args.workers, threads=args.threads,
                                  device=args.device, val_every=0, method_args=dict(options),
                                  task_args=json.loads(args.task_args)), progress=False)
    t1 = time.time()
    result = evaluate_run(run, progress=False, device=args.device)
    test = flatten(result["metrics"]["test"])
    return {"variant": name, "seed": args.seed, "train_s": round(t1 - t0, 1), "eval_s": round(time.time() - t1, 1),
            **{m: test.get(m) for m in METRICS}, "chance": flatten(result["chance"]["test"]),
            "oracle": flatten(result.get("oracle", {}).get("test") or {})}


def table(rows: list[dict]) -> dict:
    """Each variant over seeds, and its difference from CMAC paired by seed (the paper's claim: the
    consistency term improves localisation over the baselines)."""
    from avlab.eval.seeds import seed_table

    return seed_table(rows, METRICS, reference="cmac")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="a sounding-objects set (default: generate --profile under --out)")
    p.add_argument("--profile", default="standard")
    p.add_argument("--out", default="runs/bench-localisation")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--task-args", default='{"augment": false}',
                   help="JSON task options for every run (default: no frame/audio augmentation — it slowed "
                        "the start of learning in the audit runs)")
    p.add_argument("--workers", type=int, default=0, help="loading processes (0: the decoded clips stay in memory)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = args.data
    if not data:
        from avlab.registry import TASKS

        data = str(TASKS.get("sound-localisation").generate("sounding-objects", out / f"data-{args.profile}",
                                                              profile=args.profile, progress=False))
    rows = []
    for seed in args.seeds:
        args.seed = seed
        for name in args.variants:
            rows.append(run_variant(name, data, out, args))
            print(json.dumps({k: v for k, v in rows[-1].items() if k not in ("chance", "oracle")}), flush=True)
            (out / "summary.json").write_text(json.dumps({"rows": rows}, indent=1))
    summary = {"command": "python benchmarks/localisation.py " + " ".join(argv or []), "data": data,
               "budget": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                          "task_args": json.loads(args.task_args)},
               "seeds": args.seeds, "chance": rows[0]["chance"], "oracle": rows[0]["oracle"],
               "rows": rows, "table": table(rows)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: summary[k] for k in ("budget", "seeds", "chance", "oracle", "table")}, indent=1))
    return summary


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
