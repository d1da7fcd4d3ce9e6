"""``avlab eval``: a trained run scored by its task's protocol → ``RUN/eval.json``.

The run's task is looked up by name in the task registry; its evaluator embeds the test data,
runs the protocol and writes ``eval.json`` (metrics beside chance and, on synthetic data, the
oracle) plus the task's outputs (embeddings, attention maps …) into the run folder. By default
the weights chosen on the validation split (``best.safetensors``) are evaluated when the run kept
them; the test split is never used to choose.
"""
from __future__ import annotations

import json
from pathlib import Path

from avlab.device import resolve_device
from avlab.registry import TASKS
from avlab.runs import load_run


def selected_weights(run: Path, select: str = "best") -> str:
    """``best.safetensors`` (chosen on validation) when asked for and present, else the last weights."""
    if select not in ("best", "last"):
        raise ValueError(f"--select must be best or last, got {select!r}")
    return "best.safetensors" if select == "best" and (run / "best.safetensors").exists() else "model.safetensors"


def evaluate_run(run: str | Path, data: str | Path | None = None, progress: bool = True, device: str = "auto",
                 select: str = "best", **options) -> dict:
    """Evaluate ``run`` on ``data`` (default: the data it was trained on); task options pass through."""
    run = Path(run)
    weights = selected_weights(run, select)
    cfg, method = load_run(run, weights=weights, device=resolve_device(device))
    result = TASKS.get(cfg.task).evaluate(run, cfg, method, Path(data or cfg.data), progress=progress, **options)
    result["weights"] = weights
    (run / "eval.json").write_text(json.dumps(result, indent=1))
    return result
