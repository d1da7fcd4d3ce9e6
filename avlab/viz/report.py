"""Training curves and protocol tables for the training (01) and report (04) notebooks."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from avlab.eval.tree import flatten
from avlab.runs import read_metrics, task_of


class LiveLossPlot:
    """An ``on_epoch`` callback that redraws the loss curves in place in a notebook."""

    def __init__(self, keys=("loss", "inst_v2f", "inst_f2v", "proto_v2f", "proto_f2v")):
        import matplotlib.pyplot as plt
        from IPython.display import display

        self.keys, self.records = keys, []
        self.fig, self.ax = plt.subplots(figsize=(7, 3))
        plt.close(self.fig)  # shown through the display handle only
        self.handle = display(self.fig, display_id=True)

    def __call__(self, record: dict) -> None:
        self.records.append(record)
        self.ax.clear()
        df = pd.DataFrame(self.records)
        for k in self.keys:
            if k in df:
                self.ax.plot(df.epoch, df[k], label=k)
        self.ax.set(xlabel="epoch", ylabel="loss")
        self.ax.legend(fontsize=7)
        self.fig.tight_layout()
        self.handle.update(self.fig)


def loss_figure(run: str | Path, keys=("loss", "inst_v2f", "inst_f2v", "proto_v2f", "proto_f2v")):
    import matplotlib.pyplot as plt

    df = pd.DataFrame(read_metrics(run))
    fig, ax = plt.subplots(figsize=(7, 3))
    for k in keys:
        if k in df:
            ax.plot(df.epoch, df[k], label=k)
    ax.set(xlabel="epoch", ylabel="loss", title=Path(run).name)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def load_eval(run: str | Path) -> dict:
    path = Path(run) / "eval.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `avlab eval --run {run}` first")
    return json.loads(path.read_text())


def task_of_run(run: str | Path):
    """The registered task of an evaluated run."""
    return task_of(load_eval(run))


def other_splits(run: str | Path) -> list[str]:
    """The evaluated splits of a run besides its task's headline split."""
    result = load_eval(run)
    return [s for s in result["metrics"] if s != task_of(result).headline_split]


def protocol_table(result: dict, split: str | None = None, metrics=None) -> pd.DataFrame:
    """One run's metrics beside chance and the oracle (and the share of the gap closed); the split
    and the metrics default to the run's task's headline split and key metrics."""
    task = task_of(result)
    split, metrics = split or task.headline_split, metrics or task.key_metrics
    cols = {"model": flatten(result["metrics"].get(split, {}))}
    ci = flatten(result.get("ci", {}).get(split, {}))
    if ci:  # the 95 % bootstrap interval over test identities
        cols["ci_low"] = {k: v[0] for k, v in ci.items()}
        cols["ci_high"] = {k: v[1] for k, v in ci.items()}
    cols["chance"] = flatten(result["chance"].get(split, {}))
    if "oracle" in result:
        cols["oracle"] = flatten(result["oracle"].get(split, {}))
    df = pd.DataFrame(cols).loc[[m for m in metrics if m in cols["model"]]]
    if "oracle" in df and split in result.get("gap_closed", {}):  # only where the oracle is a ceiling
        df["gap_closed"] = (df.model - df.chance) / (df.oracle - df.chance)
    return df


def comparison_table(runs: list[str | Path], split: str | None = None, metrics=None) -> pd.DataFrame:
    """Metrics (rows) × runs (columns), with chance and oracle columns from the first run; the split
    and the metrics default to the first run's task's headline split and key metrics."""
    results = {Path(r).name: load_eval(r) for r in runs}
    first = next(iter(results.values()))
    task = task_of(first)
    split, metrics = split or task.headline_split, metrics or task.key_metrics
    df = pd.DataFrame({name: flatten(r["metrics"].get(split, {})) for name, r in results.items()})
    df["chance"] = pd.Series(flatten(first["chance"].get(split, {})))
    if "oracle" in first:
        df["oracle"] = pd.Series(flatten(first["oracle"].get(split, {})))
    return df.loc[[m for m in metrics if m in df.index]]


def comparison_text(runs: list[str | Path], split: str | None = None, metrics=None) -> pd.DataFrame:
    """:func:`comparison_table` for printing: each run's value with its 95 % interval ("0.71 [0.65, 0.77]")."""
    table = comparison_table(runs, split, metrics)
    out = table.map(lambda v: f"{v:.3f}")
    for r in runs:
        result = load_eval(r)
        ci = flatten(result.get("ci", {}).get(split or task_of(result).headline_split, {}))
        name = Path(r).name
        out[name] = [f"{table.at[m, name]:.3f} [{ci[m][0]:.3f}, {ci[m][1]:.3f}]" if m in ci else out.at[m, name]
                     for m in table.index]
    return out


def comparison_figure(table: pd.DataFrame, title: str = ""):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.2))
    table.drop(index=[m for m in table.index if m.endswith("eer")]).plot.bar(ax=ax, width=0.8)
    ax.set(ylim=(0, 1.05), title=title)
    ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    ax.legend(fontsize=7, ncol=4)
    fig.tight_layout()
    return fig


def matching_curve_figure(runs: list[str | Path], split: str = "unseen_unheard", direction: str = "v2f"):  # voice-face
    """1:N accuracy against N for each run, the oracle and chance."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    first = None
    for r in runs:
        res = load_eval(r)
        first = first or res
        curve = res["metrics"].get(split, {}).get("matching_1toN", {}).get(direction, {})
        ax.plot([int(n) for n in curve], list(curve.values()), marker="o", label=Path(r).name)
    for name in ("oracle", "chance"):
        curve = (first or {}).get(name, {}).get(split, {}).get("matching_1toN", {}).get(direction, {})
        if curve:
            ax.plot([int(n) for n in curve], list(curve.values()), ls="--", label=name)
    ax.set(xlabel="N", ylabel="accuracy", title=f"1:N matching {direction} ({split})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
