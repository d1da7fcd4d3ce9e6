"""Training curves and protocol tables for the training (01) and report (04) notebooks."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from avlab.eval.tree import flatten
from avlab.runs import read_metrics, task_of
from avlab.tasks.protocol_table import protocol_table  # noqa: F401  (notebooks call report.protocol_table)


# The loss terms the methods log (CID/CMPC: instance and prototype terms; ADC-SSL: the two
# contrasts and the adversaries' cross-entropies; CMAC: its contrast beside that contrast's chance
# level, and the consistency terms); a curve is drawn for each one a run has.
LOSS_KEYS = ("loss", "inst_v2f", "inst_f2v", "proto_v2f", "proto_f2v", "short", "long", "identity", "modality",
             "contrast", "contrast_chance", "consistency_v", "consistency_a")


class LiveLossPlot:
    """An ``on_epoch`` callback that redraws the loss curves in place in a notebook."""

    def __init__(self, keys=LOSS_KEYS):
        import matplotlib.pyplot as plt
        from IPython.display import display

        self.keys, self.records = keys, []
        self.fig, self.ax = plt.subplots(figsize=(7, 3))
        plt.close(self.fig)  # shown through the display handle only
        # PNG bytes rather than the Figure: they display under any matplotlib backend, and the
        # handle's last update is what papermill keeps in the executed notebook.
        self.handle = display(self._image(), display_id=True)

    def _image(self):
        from IPython.display import Image

        from avlab.viz.display import png_bytes

        return Image(data=png_bytes(self.fig))

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
        self.handle.update(self._image())


def loss_figure(run: str | Path, keys=LOSS_KEYS):
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


def headline_sentence(runs: list[str | Path]) -> str:
    """One line for a newcomer: the best run's headline figure (the task's first key metric on its
    headline split) with its interval, beside chance and the oracle, and the share of the gap closed."""
    results = {Path(r).name: load_eval(r) for r in runs}
    task = task_of(next(iter(results.values())))
    split, metric = task.headline_split, task.key_metrics[0]
    value = {name: flatten(r["metrics"].get(split, {})).get(metric) for name, r in results.items()}
    name = max((n for n in value if value[n] is not None), key=value.get)
    result = results[name]
    low, high = _ci(result, split).get(metric, (float("nan"), float("nan")))
    chance = flatten(result["chance"].get(split, {}))[metric]
    text = (f"In one line: the best run, {name}, scores {metric_label(metric)} {value[name]:.3f} "
            f"(95 % interval {low:.3f}–{high:.3f}) on {split.replace('_', '-')} data; chance is {chance:.3f}")
    oracle = flatten(result.get("oracle", {}).get(split, {})).get(metric)
    if oracle is not None:
        text += (f", the oracle {oracle:.3f}: it closed {(value[name] - chance) / (oracle - chance):.0%} of the gap "
                 f"from chance to the best possible")
    return text + ("; the interval is clear of chance — it learned." if low > chance else
                   "; the interval still includes chance — not yet distinguishable from an untrained model.")


def comparison_figure(table: pd.DataFrame, title: str = ""):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.2))
    table.drop(index=[m for m in table.index if m.endswith("eer")]).rename(index=metric_label).plot.bar(
        ax=ax, width=0.8)
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


# --- interactive (plotly) figures: hover gives the exact value, the run and the interval ----------
TOKENS = {"v2f": "voice→face", "f2v": "face→voice", "auc": "AUC", "eer": "EER", "map": "mAP",
          "matching_1to2": "1:2 matching", "retrieval_map": "retrieval mAP", "U": "U", "G": "G (same gender)"}
SPLIT_LABELS = {"unseen_unheard": "unseen-unheard identities", "seen_heard": "seen-heard identities"}
CHANCE_STYLE = dict(color="grey", dash="dash")
ORACLE_STYLE = dict(color="black", dash="dot")


def metric_label(metric: str) -> str:
    """A readable name for a flattened metric key: "matching_1to2/v2f/U" → "1:2 matching · voice→face · U"."""
    return " · ".join(TOKENS.get(part, part.replace("_", " ")) for part in metric.split("/"))


def run_names(runs: list[str | Path]) -> list[str]:
    """Run folder names, with the parent folder added where two runs share a name."""
    names = [Path(r).name for r in runs]
    return [f"{Path(r).parent.name}/{n}" if names.count(n) > 1 else n for r, n in zip(runs, names)]


def _ci(result: dict, split: str) -> dict:
    return flatten(result.get("ci", {}).get(split, {}))


def comparison_plot(runs: list[str | Path], split: str | None = None, metrics=None, title: str = ""):
    """Runs side by side (bars) per metric with their 95 % bootstrap intervals as error bars, and
    chance and the oracle as marks; hover names the run, the metric, the value and the interval.
    EER (lower is better) stays in the tables, not on the bars."""
    import plotly.graph_objects as go

    results = [load_eval(r) for r in runs]
    task = task_of(results[0])
    split, metrics = split or task.headline_split, metrics or task.key_metrics
    keys = [m for m in metrics if not m.endswith("eer") and m in flatten(results[0]["metrics"].get(split, {}))]
    labels = [metric_label(m) for m in keys]
    fig = go.Figure()
    for name, result in zip(run_names(runs), results):
        values, ci = flatten(result["metrics"].get(split, {})), _ci(result, split)
        y = [values.get(m, float("nan")) for m in keys]
        lo = [ci.get(m, (v, v))[0] for m, v in zip(keys, y)]
        hi = [ci.get(m, (v, v))[1] for m, v in zip(keys, y)]
        fig.add_trace(go.Bar(
            x=labels, y=y, name=name,
            error_y=dict(type="data", symmetric=False, array=[h - v for h, v in zip(hi, y)],
                         arrayminus=[v - l for l, v in zip(lo, y)], thickness=1.2),
            customdata=list(zip(lo, hi)),
            hovertemplate=f"<b>{name}</b><br>%{{x}}: %{{y:.3f}}<br>95 % CI [%{{customdata[0]:.3f}}, "
                          f"%{{customdata[1]:.3f}}]<extra></extra>"))
    for ref, style, symbol in (("chance", CHANCE_STYLE, "line-ew"), ("oracle", ORACLE_STYLE, "star")):
        values = flatten(results[0].get(ref, {}).get(split, {}))
        if values:
            fig.add_trace(go.Scatter(
                x=labels, y=[values.get(m, float("nan")) for m in keys], name=ref, mode="markers",
                marker=dict(symbol=symbol, size=14 if symbol == "star" else 30, color=style["color"],
                            line=dict(width=3, color=style["color"])),
                hovertemplate=f"<b>{ref}</b><br>%{{x}}: %{{y:.3f}}<extra></extra>"))
    fig.update_layout(barmode="group", height=430, yaxis=dict(range=[0, 1.08], title="value"),
                      title=title or f"{SPLIT_LABELS.get(split, split)}: runs beside chance and the oracle (95 % CI)",
                      legend=dict(orientation="h", y=-0.35), margin=dict(l=50, r=10, t=50, b=10))
    return fig


def _curve(tree: dict, split: str, direction: str) -> dict[int, object]:
    curve = tree.get(split, {}).get("matching_1toN", {}).get(direction, {})
    return {int(n): v for n, v in sorted(curve.items(), key=lambda kv: int(kv[0]))}


def matching_curve_plot(runs: list[str | Path], split: str = "unseen_unheard"):  # voice-face
    """1:N accuracy against N, voice→face and face→voice side by side: each run with its interval,
    the oracle and chance (1/N)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    results = [load_eval(r) for r in runs]
    directions = ("v2f", "f2v")
    fig = make_subplots(1, 2, shared_yaxes=True, subplot_titles=[TOKENS[d] for d in directions])
    palette = _palette()
    for col, direction in enumerate(directions, start=1):
        for i, (name, result) in enumerate(zip(run_names(runs), results)):
            curve, ci = _curve(result["metrics"], split, direction), _curve(result.get("ci", {}), split, direction)
            ns = list(curve)
            lo = [ci.get(n, (curve[n], curve[n]))[0] for n in ns]
            hi = [ci.get(n, (curve[n], curve[n]))[1] for n in ns]
            fig.add_trace(go.Scatter(
                x=ns, y=list(curve.values()), name=name, legendgroup=name, showlegend=col == 1, mode="lines+markers",
                line=dict(color=palette[i % len(palette)]),
                error_y=dict(type="data", symmetric=False, array=[h - v for h, v in zip(hi, curve.values())],
                             arrayminus=[v - l for l, v in zip(lo, curve.values())], thickness=1),
                customdata=list(zip(lo, hi)),
                hovertemplate=f"<b>{name}</b><br>1:%{{x}} {TOKENS[direction]}: %{{y:.3f}}<br>95 % CI "
                              f"[%{{customdata[0]:.3f}}, %{{customdata[1]:.3f}}]<extra></extra>"), 1, col)
        for ref, style in (("oracle", ORACLE_STYLE), ("chance", CHANCE_STYLE)):
            curve = _curve(results[0].get(ref, {}), split, direction)
            if curve:
                fig.add_trace(go.Scatter(x=list(curve), y=list(curve.values()), name=ref, legendgroup=ref,
                                         showlegend=col == 1, mode="lines", line=style,
                                         hovertemplate=f"<b>{ref}</b><br>1:%{{x}}: %{{y:.3f}}<extra></extra>"), 1, col)
    fig.update_xaxes(title_text="N (candidates)", dtick=1)
    fig.update_yaxes(title_text="accuracy", range=[0, 1.05], col=1)
    fig.update_layout(height=380, title=f"1:N matching, {SPLIT_LABELS.get(split, split)}",
                      margin=dict(l=50, r=10, t=70, b=10))
    return fig


def _palette():
    import plotly.express as px

    return px.colors.qualitative.Plotly


def loss_plot(runs: list[str | Path], keys=LOSS_KEYS):
    """Training curves of several runs overlaid: one colour per run, one dash per loss term;
    hover gives the run, the term, the epoch and the value."""
    import plotly.graph_objects as go

    fig = go.Figure()
    palette, dashes = _palette(), ("solid", "dot", "dash", "longdash", "dashdot")
    for i, (name, run) in enumerate(zip(run_names(runs), runs)):
        df = pd.DataFrame(read_metrics(run))
        for j, key in enumerate(k for k in keys if k in df):
            fig.add_trace(go.Scatter(
                x=df.epoch, y=df[key], name=f"{name} · {key}", legendgroup=name, mode="lines+markers",
                line=dict(color=palette[i % len(palette)], dash=dashes[j % len(dashes)]), marker=dict(size=4),
                hovertemplate=f"<b>{name}</b> · {key}<br>epoch %{{x}}: %{{y:.4f}}<extra></extra>"))
    epochs = max((len(read_metrics(r)) for r in runs), default=1)
    fig.update_xaxes(dtick=max(1, epochs // 10))  # whole epochs
    fig.update_layout(height=380, title="training curves", xaxis_title="epoch", yaxis_title="loss (epoch mean)",
                      margin=dict(l=50, r=10, t=50, b=10))
    return fig


def protocol_figure(result: dict, split: str | None = None):
    """One run's key metrics (bars, 95 % interval as error bars) beside chance (—) and the oracle
    (★): the static figure of the training notebook, light enough for every run of a sweep."""
    import matplotlib.pyplot as plt
    import numpy as np

    table = protocol_table(result, split)
    table = table.drop(index=[m for m in table.index if m.endswith("eer")])
    x = np.arange(len(table))
    fig, ax = plt.subplots(figsize=(9, 3.4))
    err = None
    if "ci_low" in table:
        err = np.vstack([table.model - table.ci_low, table.ci_high - table.model]).clip(min=0)
    ax.bar(x, table.model, yerr=err, capsize=3, color="C0", label=result.get("method", "model"))
    ax.scatter(x, table.chance, marker="_", s=400, color="grey", label="chance", zorder=3)
    if "oracle" in table:
        ax.scatter(x, table.oracle, marker="*", s=80, color="black", label="oracle", zorder=3)
    ax.set_xticks(x, [metric_label(m) for m in table.index], rotation=30, ha="right", fontsize=7)
    split = split or task_of(result).headline_split
    ax.set(ylim=(0, 1.05), ylabel="value", title=f"{SPLIT_LABELS.get(split, split)} (95 % CI)")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    return fig


# --- studies: the JSON that benchmarks/cmpc_claim.py and `avlab lowshot` write --------------------
def _pm(cell: dict) -> str:
    return f"{cell['mean']:.3f} ± {cell['sd']:.3f}"


def _claim_table(study: dict, metric: str) -> pd.DataFrame:
    rows = []
    for epochs, budget in study["budgets"].items():
        for name, s in budget["settings"].items():
            diff = s.get("minus_cid", {}).get(metric)
            first = s.get("first_clustering")
            rows.append({"epochs": int(epochs), "setting": name, metric: _pm(s[metric]),
                         "95 % CI over seeds": f"{s[metric]['ci95'][0]:.3f}–{s[metric]['ci95'][1]:.3f}",
                         "minus CID (paired)": f"{diff['mean']:+.3f} [{diff['ci95'][0]:+.3f}, {diff['ci95'][1]:+.3f}]"
                         if diff else "",
                         "first clustering purity (face, finest K)": f"{first[0]['face'][-1]['purity']:.2f}"
                         if first else "",
                         "chance": budget["chance"][metric], "oracle": budget["oracle"].get(metric)})
    return pd.DataFrame(rows)


def _lowshot_table(study: dict, metric: str) -> pd.DataFrame:
    rows = [{"labels": f"{float(frac) * 100:g} %", "model": name,
             metric: f"{cells[metric][0]:.3f} ± {cells[metric][1]:.3f}" if metric in cells else ""}
            for frac, by_row in study["table"].items() for name, cells in by_row.items()]
    return pd.DataFrame(rows)


def study_table(path: str | Path, metric: str = "verification/U/auc") -> pd.DataFrame:
    """One study's table: the CMPC-claim study (settings × budgets, mean ± sd over seeds, the paired
    difference from CID, the first clustering's purity) or a low-shot comparison."""
    study = json.loads(Path(path).read_text())
    if study.get("benchmark") == "cmpc_claim":
        return _claim_table(study, metric)
    if "table" in study and "recipe" in study:
        return _lowshot_table(study, metric)
    raise ValueError(f"{path}: not a study this report knows (cmpc_claim.json or lowshot.json)")
