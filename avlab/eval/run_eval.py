"""``avlab eval``: a trained run scored by its task's protocol → ``RUN/eval.json``.

The run's task is looked up by name in the task registry; its evaluator embeds the test data,
runs the protocol and writes ``eval.json`` (metrics beside chance and, on synthetic data, the
oracle) plus the task's outputs (embeddings, attention maps …) into the run folder.
"""
from __future__ import annotations

from pathlib import Path

from avlab.device import resolve_device
from avlab.registry import TASKS
from avlab.runs import load_run


def evaluate_run(run: str | Path, data: str | Path | None = None, progress: bool = True, device: str = "auto",
                 weights: str = "model.safetensors", **options) -> dict:
    """Evaluate ``run`` on ``data`` (default: the data it was trained on); task options pass through."""
    run = Path(run)
    cfg, method = load_run(run, weights=weights, device=resolve_device(device))
    return TASKS.get(cfg.task).evaluate(run, cfg, method, Path(data or cfg.data), progress=progress, **options)
