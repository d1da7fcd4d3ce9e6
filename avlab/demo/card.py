"""A run's card for the demo: what was trained on what, and what the protocol measured."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from avlab.runs import load_config, task_of
from avlab.viz.report import protocol_table


def card_markdown(run: str | Path) -> str:
    """Method, options, encoders, data and budget of a run, from its ``config.json``.

    Paths are reduced to folder names: a shared demo should not publish the host's file layout.
    """
    run = Path(run)
    cfg, info = load_config(run)
    spec = info.get("spec", {})

    def listing(options: dict) -> str:
        return ", ".join(f"`{k}={v}`" for k, v in sorted(options.items())) or "defaults"

    encoders = ", ".join(f"{m} `{cfg.model.encoder_for(m)}`" for m in spec.get("modalities", {}))
    lines = [
        f"### Run `{run.name}` — method **{cfg.method}**, task **{cfg.task}**",
        f"- **Method options**: {listing(cfg.method_args)}",
        f"- **Encoders**: {encoders}, embedding {cfg.model.embed_dim}, "
        f"projection head {cfg.model.proj_dim or 'none'}",
        f"- **Data**: `{Path(cfg.data).name}` — {spec.get('n_train', '?')} training samples of "
        f"{spec.get('n_classes', '?')} classes; task options {listing(cfg.task_config().__dict__)}",
        f"- **Budget**: {info['epochs']} epochs, batch {info['batch_size']}, {info['optimizer']} lr {info['lr']}, "
        f"seed {info['seed']}",
        f"- **Code**: git `{str(info.get('git_commit', '?'))[:12]}`, torch {info.get('torch', '?')}",
    ]
    return "\n".join(lines)


def card_metrics(run: str | Path) -> pd.DataFrame:
    """Metric rows × (split columns, chance, oracle) from ``eval.json``; empty if not evaluated."""
    path = Path(run) / "eval.json"
    if not path.exists():
        return pd.DataFrame(columns=["metric"])
    result = json.loads(path.read_text())
    headline = task_of(result).headline_split
    cols = {}
    for split in sorted(result["metrics"], key=lambda s: s != headline):  # the headline split first
        label = split.replace("_", "-")
        if isinstance(result["metrics"][split], dict):
            table = protocol_table(result, split)
            cols[label] = table["model"]
            cols[f"chance ({label})"] = table["chance"]
            if "oracle" in table:
                cols[f"oracle ({label})"] = table["oracle"]
    df = pd.DataFrame(cols).round(3)
    return df.rename_axis("metric").reset_index()


def card_status(run: str | Path) -> str:
    if (Path(run) / "eval.json").exists():
        result = json.loads((Path(run) / "eval.json").read_text())
        return (f"Metrics from `eval.json` (the {task_of(result).name} protocol; chance = each metric's value "
                "for an uninformative model; oracle = the Bayes-optimal decision on a synthetic set's true latents).")
    return f"This run has not been evaluated: run `avlab eval --run {Path(run).name}` to fill this table."
