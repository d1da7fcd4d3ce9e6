"""The CMPC claim, tested: does CMPC beat CID on unseen identities, and under which settings? Prints JSON.

    python benchmarks/cmpc_claim.py [--profile standard] [--epochs 40 80] [--seeds 0 1 2]
                                    [--settings cid cmpc ...] [--out runs/cmpc-claim]

Every setting trains with the same budget (epochs, batch, encoders, data) and is evaluated by the
same protocol on the unseen-unheard lists. The settings (:func:`settings`):

- ``cid`` — the baseline (cross-modal InfoNCE only);
- ``cmpc`` — ours by default, the first clustering after 1/3 of training, K = 0.08/0.16/0.24 × clips;
- ``cmpc-warmup-1/2`` — the first clustering after half of training;
- ``cmpc-K-identities`` — K = 0.5/1/1.5 × the training identities (the released code's K);
- ``cmpc-no-recalibration`` — the prototype loss without the recalibration weights;
- ``cmpc-as-released`` — every switch at the released code's setting at once: its K, clustering
  at ~10 % of training then every 2 epochs and dropped after one batch, 1/64-1/16-1/4 granularity
  weights, its ρ and φ arithmetic, first-K k-means, lr 5e-3 with 10 % warm-up and no clipping,
  encoders without a final linear layer.

For each setting and budget: mean, standard deviation and a 95 % t-interval over seeds of the
headline metrics; the difference from CID paired by seed (same seed = same data order and
initialisation) with its interval; and, for CMPC settings, the purity and NMI against identities
of the first clustering — the one the prototype loss starts from. Runs already in ``--out`` are
reused, so an interrupted study resumes and settings can be spread over machines (``--settings``,
``--seeds``) and summarised together at the end.
"""
import argparse
import json
import os
import platform
from pathlib import Path

import numpy as np

from avlab.cli import ensure_profile_set
from avlab.eval.clusters import run_cluster_scores
from avlab.eval.run_eval import evaluate_run
from avlab.eval.seeds import seed_interval as interval
from avlab.eval.tree import flatten
from avlab.runs import ModelConfig
from avlab.train import TrainConfig, read_metrics, train_unless_done

METRICS = ["verification/U/auc", "verification/G/auc", "matching_1to2/v2f/U", "matching_1to2/f2v/U",
           "retrieval_map/v2f"]
RELEASED_SWITCHES = dict(quirk_discard_clusters=True, granularity_weighting="official",
                         prototype_agreement="official", phi_placement="official", kmeans_init="first_k",
                         per_identity=(0.5, 1.0, 1.5), cluster_every=2)


def settings(epochs: int) -> dict[str, dict]:
    """Each setting: the method, its options and any loop, model or task options that differ from the
    baseline's."""
    third, half = max(1, epochs // 3), max(1, epochs // 2)
    return {
        "cid": {"method": "cid"},
        "cmpc": {"method": "cmpc", "method_args": {"cluster_warmup_epochs": third}},
        "cmpc-warmup-1/2": {"method": "cmpc", "method_args": {"cluster_warmup_epochs": half}},
        "cmpc-K-identities": {"method": "cmpc", "method_args": {"cluster_warmup_epochs": third,
                                                                "per_identity": (0.5, 1.0, 1.5)}},
        "cmpc-no-recalibration": {"method": "cmpc", "method_args": {"cluster_warmup_epochs": third,
                                                                    "recalibration": False}},
        "cmpc-as-released": {"method": "cmpc",
                             "method_args": {**RELEASED_SWITCHES, "cluster_warmup_epochs": max(1, epochs // 10)},
                             "loop": {"lr": 5e-3, "warmup_epochs": 0.1 * epochs, "grad_clip": 0.0,
                                      "sampling": "replacement"},
                             "model": {"default_encoder": "resnet_tiny_nofc", "embed_dim": 128},
                             "task_args": {"items": "video"}},
    }


def run_one(name: str, setting: dict, epochs: int, seed: int, args) -> dict:
    out = Path(args.out) / f"{name.replace('/', '_')}-e{epochs}-s{seed}"
    model = ModelConfig(**setting.get("model", {}))
    cfg = TrainConfig(method=setting["method"], data=args.data, out=str(out), epochs=epochs,
                      batch_size=args.batch_size, seed=seed, workers=args.workers, model=model,
                      task_args={**json.loads(args.task_args), **setting.get("task_args", {})},
                      method_args=dict(setting.get("method_args", {})), **setting.get("loop", {}))
    train_unless_done(cfg, progress=not args.quiet)
    done = out / "eval.json"
    result = json.loads(done.read_text()) if done.exists() else evaluate_run(out, progress=not args.quiet)
    row = {"run": str(out), "metrics": flatten(result["metrics"]["unseen_unheard"]),
           "chance": flatten(result["chance"]["unseen_unheard"]),
           "oracle": flatten(result.get("oracle", {}).get("unseen_unheard", {})),
           "clips_per_s": float(np.median([m["clips_per_s"] for m in read_metrics(out)]))}
    if (out / "clusters_first.safetensors").exists():
        first = run_cluster_scores(out, which="first")
        row["first_clustering"] = {m: [{k: round(g[k], 4) for k in ("k", "purity", "nmi")} for g in first[m]]
                                   for m in ("voice", "face")}
    return row


def summarise(rows: dict[str, list[dict]]) -> dict:
    """Per setting: each metric over seeds, and its difference from CID paired by seed."""
    out = {}
    for name, runs in rows.items():
        entry = {m: interval([r["metrics"][m] for r in runs]) for m in METRICS}
        if name != "cid" and "cid" in rows and len(rows["cid"]) == len(runs):
            entry["minus_cid"] = {m: interval([r["metrics"][m] - c["metrics"][m] for r, c in zip(runs, rows["cid"])])
                                  for m in METRICS}
        if "first_clustering" in runs[0]:
            entry["first_clustering"] = [r["first_clustering"] for r in runs]
        entry["train_clips_per_s"] = round(float(np.mean([r["clips_per_s"] for r in runs])), 1)
        out[name] = entry
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="standard")
    ap.add_argument("--data", help="dataset root (default: data/talking-faces-<profile>, generated if missing)")
    ap.add_argument("--epochs", type=int, nargs="+", default=[40, 80])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--settings", nargs="+", help="default: all (see the module docstring)")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--task-args", default="{}", help='task options as JSON, e.g. the main job\'s '
                    '\'{"face_size": 32, "crop_seconds": 1.0, "n_mels": 40}\'')
    ap.add_argument("--out", default="runs/cmpc-claim")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    args.data = args.data or f"data/talking-faces-{args.profile}"
    ensure_profile_set(Path(args.data), args.profile, progress=not args.quiet)
    report = {"benchmark": "cmpc_claim", "split": "unseen_unheard", "data": args.data, "batch_size": args.batch_size,
              "task_args": json.loads(args.task_args),
              "seeds": args.seeds, "budgets": {}, "machine": f"{platform.machine()}, {os.cpu_count()} cores"}
    for epochs in args.epochs:
        chosen = {k: v for k, v in settings(epochs).items() if not args.settings or k in args.settings}
        rows = {name: [run_one(name, s, epochs, seed, args) for seed in args.seeds] for name, s in chosen.items()}
        first = next(iter(rows.values()))[0]
        report["budgets"][str(epochs)] = {
            "chance": {m: round(first["chance"][m], 4) for m in METRICS},
            "oracle": {m: round(first["oracle"][m], 4) for m in METRICS if m in first["oracle"]},
            "settings": summarise(rows)}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "cmpc_claim.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
