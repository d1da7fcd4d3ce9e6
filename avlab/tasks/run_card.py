"""A run's card for the demo: what was trained on what, and what the protocol measured."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from avlab.eval.tree import flatten
from avlab.runs import load_config, task_of
from avlab.tasks.protocol_table import protocol_table


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
            if "ci_low" in table:
                cols[f"95 % interval ({label})"] = (table.ci_low.map("{:.3f}".format) + "–"
                                                     + table.ci_high.map("{:.3f}".format))
            cols[f"chance ({label})"] = table["chance"]
            if "oracle" in table:
                cols[f"oracle ({label})"] = table["oracle"]
    df = pd.DataFrame(cols).round(3)  # index: the metric names of the first split's table
    return df.rename_axis("metric").reset_index()


def card_status(run: str | Path) -> str:
    if (Path(run) / "eval.json").exists():
        result = json.loads((Path(run) / "eval.json").read_text())
        return (f"Metrics from `eval.json` (the {task_of(result).name} protocol; chance = each metric's value "
                "for an uninformative model; oracle = the Bayes-optimal decision on a synthetic set's true latents).")
    return f"This run has not been evaluated: run `avlab eval --run {Path(run).name}` to fill this table."


# --- what a visitor should know before trusting a ranking -------------------------------------------
def synthetic_benchmark(data: str | Path) -> str | None:
    """The synthetic benchmark a data folder was generated as (its manifest or its generator's
    ``synth_config.json`` says), None for real data or a folder not on this machine."""
    from avlab.data.manifest import read_manifest

    data = Path(data)
    for name, read in (("avlab-dataset.json", read_manifest), ("synth_config.json", None)):
        if (data / name).exists():
            info = read(data) if read else json.loads((data / name).read_text())
            if info and info.get("benchmark"):
                return info["benchmark"]
    return None


def trained_on_markdown(run: str | Path) -> str:
    """One paragraph: what the model learnt from, and what that means for a visitor's own media."""
    cfg, info = load_config(run)
    spec, task = info.get("spec", {}), task_of(info)
    size = f"{spec.get('n_train', '?')} training clips of {spec.get('n_classes', '?')} {task.class_noun}"
    benchmark = synthetic_benchmark(cfg.data)
    if benchmark is None:
        return f"**Trained on** `{Path(cfg.data).name}` ({size})."
    what = task.benchmarks.get(benchmark, "a generated benchmark")
    return f"**Trained on synthetic data only**: `{benchmark}` ({what}; {size}). {task.synthetic_note}"


def headline(run: str | Path) -> dict | None:
    """The run's headline figure from ``eval.json`` (the task's first key metric on its headline
    split) with its 95 % interval, chance, the oracle and whether it beats chance; None before
    evaluation. ``beats_chance`` is None when there is no interval to judge by."""
    path = Path(run) / "eval.json"
    if not path.exists():
        return None
    result = json.loads(path.read_text())
    task = task_of(result)
    split, metric = task.headline_split, task.key_metrics[0]
    value = flatten(result["metrics"].get(split, {})).get(metric)
    if value is None:
        return None
    ci = flatten(result.get("ci", {}).get(split, {})).get(metric)
    chance = flatten(result.get("chance", {}).get(split, {})).get(metric)
    oracle = flatten(result.get("oracle", {}).get(split, {})).get(metric)
    higher = oracle is None or chance is None or oracle >= chance  # e.g. an error rate is lower-is-better
    beats = None
    if ci is not None and chance is not None:
        beats = ci[0] > chance if higher else ci[1] < chance  # the whole interval on the good side
    return {"split": split, "metric": metric, "value": value, "ci": ci, "chance": chance, "oracle": oracle,
            "beats_chance": beats}


def headline_markdown(run: str | Path) -> str:
    """The headline figure beside chance and the oracle, and a visible note when it is at chance."""
    h = headline(run)
    if h is None:
        return "*This run has not been evaluated: how well it does on data it never trained on is unknown.*"
    interval = f" (95 % interval {h['ci'][0]:.3f}–{h['ci'][1]:.3f})" if h["ci"] else ""
    parts = [f"**Headline** ({h['split'].replace('_', '-')}, `{h['metric']}`): **{h['value']:.3f}**{interval}"]
    if h["chance"] is not None:
        parts.append(f"chance {h['chance']:.3f}")
    if h["oracle"] is not None:
        parts.append(f"oracle {h['oracle']:.3f}")
    text = " · ".join(parts) + "."
    if h["beats_chance"] is False:
        text += ("\n\n> ⚠ **This run is not better than chance**: the interval includes the chance level, so the "
                 "rankings on this page are no more informative than a random order.")
    elif h["beats_chance"] is None:
        text += " *(no interval in eval.json: re-run `avlab eval` to judge it against chance)*"
    return text
