"""Low-shot comparison: fine-tune pre-trained runs and a from-scratch model with identity labels
on a fraction of the training clips, and evaluate all of them on the same protocol."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from avlab.eval.run_eval import evaluate_run
from avlab.runs import TrainConfig, task_of
from avlab.train import train


def run_lowshot(pretrained: dict[str, str], data: str, out: str | Path, fractions=(0.05, 0.1), epochs: int = 20,
                seed: int = 0, progress: bool = True, batch_size: int | None = None) -> dict:
    """``pretrained`` maps a name (e.g. ``cmpc``) to a finished run; ``scratch`` is added."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    first = next(iter(pretrained.values()), None)
    base = (TrainConfig.from_json(json.loads((Path(first) / "config.json").read_text())) if first else TrainConfig())
    summary: dict = {"data": data, "epochs": epochs, "seed": seed, "pretrained": pretrained, "headline": {}}
    for frac in fractions:
        for name, init in [*pretrained.items(), ("scratch", "")]:
            run = out / f"{name}-{frac:g}"
            cfg = replace(base, method="supervised", method_args={}, data=data, out=str(run), epochs=epochs,
                          seed=seed, init_from=init, train_fraction=frac, batch_size=batch_size or base.batch_size)
            if not (run / "model.safetensors").exists():
                train(cfg, resume=(run / "checkpoint.safetensors").exists(), progress=progress)
            result = evaluate_run(run, data, progress=progress)
            summary["split"] = task_of(result).headline_split
            summary["headline"].setdefault(f"{frac:g}", {})[name] = task_of(result).headline(result)
    (out / "lowshot.json").write_text(json.dumps(summary, indent=1))
    return summary
