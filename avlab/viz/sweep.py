"""Tables and figures of a papermill sweep (notebook 06)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd


def load_sweep(sweep_dir: str | Path) -> pd.DataFrame:
    path = Path(sweep_dir) / "sweep.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `avlab sweep NOTEBOOK --grid … --out {sweep_dir}` first")
    return pd.read_csv(path)


def sweep_figure(table: pd.DataFrame, metric: str, by: str | None = None):
    """``metric`` per run (bars), failed runs marked with an ✗; grouped by the ``by`` parameter."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(table)), 3))
    ok = table.status == "ok"
    values = table[metric] if metric in table else pd.Series([float("nan")] * len(table))
    colours = None
    if by and by in table:
        groups = {g: f"C{i}" for i, g in enumerate(sorted(table[by].astype(str).unique()))}
        colours = [groups[str(g)] for g in table[by]]
    ax.bar(range(len(table)), values.where(ok, 0.0), color=colours)
    for i, failed in enumerate(~ok):
        if failed:
            ax.text(i, 0.02, "✗ failed", rotation=90, ha="center", va="bottom", color="red", fontsize=8)
    ax.set_xticks(range(len(table)), table.run, rotation=60, ha="right", fontsize=7)
    ax.set(ylabel=metric, title=f"{metric} per run" + (f" (colour: {by})" if colours else ""))
    fig.tight_layout()
    return fig
