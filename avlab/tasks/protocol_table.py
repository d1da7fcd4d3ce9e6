"""One run's protocol figures as a table beside chance, the oracle and the share of the gap closed:
what the run card, the notebooks and the report show."""
from __future__ import annotations

import pandas as pd

from avlab.eval.tree import flatten
from avlab.runs import task_of


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
