"""Low-shot: what a few labels add to a pre-trained model, beside zero-shot and training from scratch.

Fine-tuning a pre-trained model with a randomly initialised head and the pre-training learning
rate destroys what it learned before the head is any good (the first measurement here: every
pre-trained run fell below its own zero-shot score). The recipe (:class:`Recipe`) keeps it:

1. **probe** — the trunks frozen (BatchNorm statistics included), only the encoders' last linear
   layers and the classifier learn: a linear probe of the pre-trained features;
2. **fine-tune** — from the probe (its classifier too), at a lower learning rate with the trunks
   lower still, stopped early on the validation identities (``best.safetensors`` is evaluated);

the LP-FT recipe of Kumar et al., "Fine-tuning can distort pretrained features and underperform
out-of-distribution" (ICLR 2022). ``scratch`` trains the same supervised method from random
weights on the same labels, stopped early the same way. Every figure comes from the task's
protocol on the same test lists; the claim to test is fine-tune ≥ zero-shot ≥ scratch.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from avlab.eval.run_eval import evaluate_run
from avlab.runs import TrainConfig, task_of
from avlab.train import train_unless_done


@dataclass(frozen=True)
class Recipe:
    probe_epochs: int = 10
    finetune_epochs: int = 20
    finetune_lr_scale: float = 0.1  # fine-tuning learning rate = the pre-trained run's × this
    trunk_lr_scale: float = 0.1  # … and the trunks' a further × this
    scratch_epochs: int = 20
    early_stop: int = 5  # validations without a better score before fine-tuning / scratch stop


def _headline(run: Path, data: str, progress: bool) -> tuple[str, dict]:
    """(headline split, headline metrics) of a run, evaluated on ``data`` unless it already was."""
    done = run / "eval.json"
    result = json.loads(done.read_text()) if done.exists() else None
    if result is None or Path(result.get("data", "")).resolve() != Path(data).resolve():
        result = evaluate_run(run, data, progress=progress)
    task = task_of(result)
    return task.headline_split, task.headline(result)


def _stage(base: TrainConfig, out: Path, progress: bool, **changes) -> Path:
    """Train one supervised stage into ``out`` (resumed or skipped when already there)."""
    return train_unless_done(replace(base, method="supervised", method_args={}, out=str(out), **changes), progress)


def run_lowshot(pretrained: dict[str, str], data: str, out: str | Path, fractions=(0.01, 0.05, 0.1), seeds=(0,),
                recipe: Recipe = Recipe(), progress: bool = True, batch_size: int | None = None) -> dict:
    """``pretrained`` maps a name (e.g. ``cmpc``) to a finished run. For each labelled fraction and
    seed: each run zero-shot, probed and fine-tuned, and ``scratch``. Writes ``out/lowshot.json``:
    per-seed figures (``runs``) and their mean and standard deviation over seeds (``table``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    first = next(iter(pretrained.values()), None)
    first_cfg = json.loads((Path(first) / "config.json").read_text()) if first else None
    base = TrainConfig.from_json(first_cfg) if first_cfg else TrainConfig()
    base = replace(base, data=data, batch_size=batch_size or base.batch_size, val_every=1, init_from="",
                   trunk_lr_scale=1.0, early_stop=0)
    n_clips = first_cfg.get("n_train_clips") if first_cfg else None
    split, zero_shot = None, {}
    for name, run in pretrained.items():
        split, zero_shot[name] = _headline(Path(run), data, progress)
    rows = []
    for frac in fractions:
        for seed in seeds:
            # 1 % of a small set is a handful of clips: the batch shrinks to fit them (one step per epoch)
            batch = min(base.batch_size, max(2, round(frac * n_clips))) if n_clips else base.batch_size
            labelled = replace(base, seed=seed, train_fraction=frac, batch_size=batch)
            tag = f"{frac:g}-s{seed}"
            stages = {f"{n}/zero-shot": Path(r) for n, r in pretrained.items()}
            for name, init in pretrained.items():
                probe = _stage(labelled, out / f"{name}-probe-{tag}", progress, init_from=init, trunk_lr_scale=0.0,
                               epochs=recipe.probe_epochs, warmup_epochs=0.0)
                stages[f"{name}/probe"] = probe
                stages[f"{name}/fine-tune"] = _stage(
                    labelled, out / f"{name}-finetune-{tag}", progress, init_from=str(probe),
                    lr=base.lr * recipe.finetune_lr_scale, min_lr=base.min_lr * recipe.finetune_lr_scale,
                    trunk_lr_scale=recipe.trunk_lr_scale, epochs=recipe.finetune_epochs, early_stop=recipe.early_stop)
            stages["scratch"] = _stage(labelled, out / f"scratch-{tag}", progress, epochs=recipe.scratch_epochs,
                                       early_stop=recipe.early_stop)
            for row, run in stages.items():
                if row.endswith("zero-shot"):
                    figures = zero_shot[row.split("/")[0]]
                else:
                    split, figures = _headline(run, data, progress)
                rows.append({"fraction": frac, "seed": seed, "row": row, "run": str(run), **figures})
    summary = {"data": data, "split": split, "recipe": asdict(recipe), "fractions": list(fractions),
               "seeds": list(seeds), "pretrained": pretrained, "runs": rows, "table": summarise(rows)}
    (out / "lowshot.json").write_text(json.dumps(summary, indent=1))
    return summary


def summarise(rows: list[dict]) -> dict:
    """{fraction: {row: {metric: [mean, sd over seeds]}}} of the per-seed rows."""
    table: dict = {}
    for frac in sorted({r["fraction"] for r in rows}):
        for name in dict.fromkeys(r["row"] for r in rows):
            chosen = [r for r in rows if r["fraction"] == frac and r["row"] == name]
            metrics = [k for k in chosen[0] if k not in ("fraction", "seed", "row", "run")]
            table.setdefault(f"{frac:g}", {})[name] = {
                k: [float(np.mean([r[k] for r in chosen])), float(np.std([r[k] for r in chosen]))] for k in metrics}
    return table


def table_text(summary: dict, metric: str = "verification/U/auc") -> str:
    """One line per (fraction, row): ``metric`` as mean ± sd over seeds."""
    lines = [f"{summary['split']} {metric} (mean ± sd over seeds {summary['seeds']})"]
    for frac, rows in summary["table"].items():
        for name, figures in rows.items():
            if metric in figures:
                mean, sd = figures[metric]
                lines.append(f"  {float(frac) * 100:5.1f} % labels  {name:<22} {mean:.3f} ± {sd:.3f}")
    return "\n".join(lines)
