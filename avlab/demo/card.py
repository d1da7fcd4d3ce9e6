"""A run's card for the demo: what was trained on what, and what the protocol measured."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from avlab.viz.report import protocol_table

SPLITS = {"unseen_unheard": "unseen-unheard", "seen_heard": "seen-heard"}


def card_markdown(run: str | Path) -> str:
    """Method, options, encoders, data and budget of a run, from its ``config.json``.

    Paths are reduced to folder names: a shared demo should not publish the host's file layout.
    """
    run = Path(run)
    info = json.loads((run / "config.json").read_text())
    model = info.get("model", {})
    options = ", ".join(f"`{k}={v}`" for k, v in sorted(info.get("method_args", {}).items())) or "defaults"
    lines = [
        f"### Run `{run.name}` — method **{info['method']}**",
        f"- **Method options**: {options}",
        f"- **Encoders**: face `{model.get('face_model')}`, voice `{model.get('voice_model')}`, "
        f"embedding {model.get('embed_dim')}, projection head {model.get('proj_dim') or 'none'}",
        f"- **Data**: `{Path(info['data']).name}` — {info.get('n_train_clips', '?')} training clips of "
        f"{info.get('n_train_identities', '?')} identities; faces {info['face_size']} px, "
        f"voice windows {info['crop_seconds']} s, {info['n_mels']} mels",
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
    cols = {}
    for split, label in SPLITS.items():
        if split in result["metrics"]:
            table = protocol_table(result, split)
            cols[label] = table["model"]
            cols[f"chance ({label})"] = table["chance"]
            if "oracle" in table:
                cols[f"oracle ({label})"] = table["oracle"]
    df = pd.DataFrame(cols).round(3)
    return df.rename_axis("metric").reset_index()


def card_status(run: str | Path) -> str:
    if (Path(run) / "eval.json").exists():
        return ("Metrics from `eval.json` (the voice-face protocol; chance = random embeddings through the same "
                "lists; oracle = the Bayes-optimal matcher on a synthetic set's true latents).")
    return f"This run has not been evaluated: run `avlab eval --run {Path(run).name}` to fill this table."
