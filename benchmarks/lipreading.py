"""Lip reading: ADC-SSL vs CID vs ADC-SSL's ablations vs a supervised classifier, equal budgets.

Every variant trains with the same loop options (epochs, batch, learning rate, encoders, seed)
and is scored by the same protocol (frozen front-end + temporal back-end, low-shot 1 % / 10 %,
optionally fine-tuning; identity leakage; modality probe), beside chance and the oracle. Prints
one JSON object (and writes it to ``--out``/summary.json)::

    python benchmarks/lipreading.py --data data/lip-words-quick --out runs/bench-lip --epochs 20 --seeds 0 1 2

``table`` in the JSON: each variant's mean, standard deviation over seeds and number of seeds.

A study too long for one sitting (the standard profile: hours a run on CPU) can be split across
machines with ``--rows DIR``: each finished run's row is written there as ``<variant>-seed<k>.json``
with the budget and the data set's ``synth_config.json``, and a later invocation, on this machine or
a fresh one, reuses every row whose budget and data set match instead of training again (a row that
does not match stops the study before anything trains, naming its file and fields). Commit
``DIR`` and the study resumes anywhere; ``--only-stored`` builds the table of the requested
variants and seeds from the stored rows without training (the set need not be on the machine;
``missing`` lists what is not stored yet).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

# name → (method, method options); "random-init" is the reference every pre-training must beat: the
# same encoders untrained (0 epochs), scored by the same protocol.
VARIANTS = {
    "random-init": ("adc-ssl", {}),
    "adc-ssl": ("adc-ssl", {}),
    "adc-ssl/short-only": ("adc-ssl", {"long": False}),
    "adc-ssl/long-only": ("adc-ssl", {"short": False}),
    "adc-ssl/no-adversary": ("adc-ssl", {"identity_adversary": False, "modality_adversary": False}),
    "adc-ssl/plain-grl": ("adc-ssl", {"grl": "plain"}),
    "cid": ("cid", {"temperature": 0.07}),
    "supervised": ("supervised", {"instance_weight": 0.0}),  # word labels, from scratch
}


def budget(args) -> dict:
    """What must be equal for two runs to sit in one table (the seed aside)."""
    return {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "val_every": args.val_every,
            "finetune_epochs": args.finetune_epochs, "roi": [args.roi_size, args.crop_size]}


def finished_set(data: str) -> dict | None:
    """A generated set's ``synth_config.json`` and ``oracle.json`` (None for real data, whose rows
    are not comparable across machines and are not stored). ``oracle.json`` is written last, so a
    set without it is half generated: refused, never measured into a row."""
    root = Path(data)
    if not (root / "synth_config.json").exists():
        return None
    if not (root / "oracle.json").exists():
        raise SystemExit(f"{root}: generation did not finish (no oracle.json); run the same `avlab synth` "
                         "command again to complete it")
    return {"synth_config": json.loads((root / "synth_config.json").read_text()),
            "oracle": json.loads((root / "oracle.json").read_text())}


def row_path(rows_dir: Path, variant: str, seed: int) -> Path:
    return rows_dir / f"{variant.replace('/', '-')}-seed{seed}.json"


def differences(stored: dict, expected: dict) -> list[str]:
    """The fields where a stored budget or data configuration differs from this study's."""
    return [f"{k} = {json.dumps(stored.get(k))} (this study: {json.dumps(expected.get(k))})"
            for k in sorted(set(stored) | set(expected)) if stored.get(k) != expected.get(k)]


def load_rows(rows_dir: Path, budget_now: dict, synth_config: dict | None) -> dict[tuple[str, int], dict]:
    """Every row stored in ``rows_dir``, checked before anything trains: each must have this
    study's budget and data set (``synth_config`` None: no set on this machine, so they must share
    one set among themselves), and its file name must match its variant and seed. A mismatch stops
    the study naming the file and the fields, and no file is touched."""
    rows = {}
    for path in sorted(rows_dir.glob("*.json")) if rows_dir.is_dir() else []:
        stored = json.loads(path.read_text())
        row = stored["row"]
        if synth_config is None:  # no set here: the first row's set is the one all must share
            synth_config = stored["data"]["synth_config"]
        problems = [f"budget {d}" for d in differences(stored["budget"], budget_now)]
        problems += [f"data set {d}" for d in differences(stored["data"]["synth_config"], synth_config)]
        if path != row_path(rows_dir, row["variant"], row["seed"]):
            problems.append(f"it holds {row['variant']} seed {row['seed']}")
        if problems:
            raise SystemExit(f"{path}: stored under another study: " + "; ".join(problems) +
                             ". Use another --rows folder (the stored rows are left as they are).")
        rows[row["variant"], row["seed"]] = {**stored, "path": path}
    return rows


def store_row(rows_dir: Path, row: dict, budget_now: dict, data: dict) -> None:
    rows_dir.mkdir(parents=True, exist_ok=True)
    path = row_path(rows_dir, row["variant"], row["seed"])
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"budget": budget_now, "data": data, "code": code_version(), "row": row}, indent=1))
    tmp.replace(path)  # whole or absent: an interrupted write never leaves half a row


def code_version() -> str | None:
    """The commit that measured a row (a record, not a condition: a study may resume on newer code)."""
    import subprocess

    try:
        return subprocess.run(["git", "-C", str(Path(__file__).parent), "rev-parse", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def run_variant(name: str, data: str, out: Path, args) -> dict:
    from avlab.runs import TrainConfig
    from avlab.eval.run_eval import evaluate_run
    from avlab.train import train_unless_done

    method, options = VARIANTS[name]
    run = out / f"{name.replace('/', '-')}-seed{args.seed}"
    cfg = TrainConfig(method=method, data=data, out=str(run), epochs=0 if name == "random-init" else args.epochs,
                      batch_size=args.batch_size, lr=args.lr, seed=args.seed, workers=args.workers,
                      threads=args.threads, device=args.device, method_args=options, val_every=args.val_every,
                      task_args={"roi_size": args.roi_size, "crop_size": args.crop_size})
    t0 = time.time()
    train_unless_done(cfg, progress=False)
    t1 = time.time()
    res = evaluate_run(run, progress=False, device=args.device,
                       finetune_epochs=0 if name == "random-init" else args.finetune_epochs)
    test = res["metrics"]["test"]
    return {"variant": name, "seed": args.seed, "train_s": round(t1 - t0, 1), "eval_s": round(time.time() - t1, 1),
            **{f"{k}/top1": v["top1"] for k, v in test.items() if "top1" in v},
            "frozen/top5": test["frozen"]["top5"], "frozen/top1_ci": res["ci"]["test"]["frozen"]["top1"],
            "identity_leakage": test.get("identity_leakage", {}).get("speaker_acc"),
            "modality_probe": test["modality"]["probe_acc"],
            "modality_classifier": test["modality"].get("classifier_acc")}


METRICS = ("frozen/top1", "finetune/top1", "lowshot_1pct/top1", "lowshot_10pct/top1", "identity_leakage",
           "modality_probe", "modality_classifier")


def table(rows: list[dict]) -> dict:
    """Each variant's metrics over seeds and its difference from ADC-SSL paired by seed (the claims:
    ADC-SSL reads words better than the baselines; its adversaries lower identity leakage)."""
    from avlab.eval.seeds import seed_table

    return seed_table(rows, METRICS, reference="adc-ssl")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--out", default="runs/bench-lipreading")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--roi-size", type=int, default=32)
    p.add_argument("--crop-size", type=int, default=28)
    p.add_argument("--finetune-epochs", type=int, default=0)
    p.add_argument("--val-every", type=int, default=1, help="epochs between val scores (the best is evaluated)")
    p.add_argument("--workers", type=int, default=0, help="loading processes (0: the decoded clips stay in memory)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the loop's choice)")
    p.add_argument("--device", default="auto")
    p.add_argument("--rows", type=Path, help="a folder of finished runs' rows, reused when budget and data match "
                   "and added to as runs finish (commit it to resume the study on another machine)")
    p.add_argument("--only-stored", action="store_true", help="train nothing: the table of the requested "
                   "variants and seeds from the rows in --rows (what is not stored is listed as missing)")
    args = p.parse_args(argv)
    if args.only_stored and not args.rows:
        p.error("--only-stored needs --rows")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = finished_set(args.data)
    if args.rows and data is None and not args.only_stored:
        p.error(f"--rows needs a generated set ({args.data}/synth_config.json is missing)")
    stored = load_rows(args.rows, budget(args), data and data["synth_config"]) if args.rows else {}
    rows, missing = [], []
    for seed in args.seeds:
        args.seed = seed
        for name in args.variants:
            if (name, seed) in stored:
                rows.append(stored[name, seed]["row"])
            elif args.only_stored:
                missing.append(f"{name} seed {seed}")
            else:
                rows.append(run_variant(name, args.data, out, args))
                if args.rows:
                    store_row(args.rows, rows[-1], budget(args), data)
            (out / "summary.json").write_text(json.dumps({"rows": rows}, indent=1))
    oracle = data["oracle"] if data else next((r["data"]["oracle"] for r in stored.values()), None)
    summary = {"command": "python benchmarks/lipreading.py " + " ".join(argv or []), "data": args.data,
               "budget": budget(args), "seeds": args.seeds, "rows": rows, "missing": missing, "oracle": oracle}
    summary["table"] = table(rows)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
