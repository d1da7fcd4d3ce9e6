"""Figures over seeds: the mean, its spread and a 95 % Student-t interval (the benchmarks' tables)."""
from __future__ import annotations

import numpy as np
from scipy import stats


def seed_interval(values: list[float]) -> dict:
    """Mean, standard deviation and a 95 % Student-t interval over seeds (NaN with one seed), and
    the values themselves."""
    v = np.asarray(values, dtype=float)
    mean, sd = float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0
    half = float(stats.t.ppf(0.975, len(v) - 1) * sd / np.sqrt(len(v))) if len(v) > 1 else float("nan")
    return {"mean": round(mean, 4), "sd": round(sd, 4), "ci95": [round(mean - half, 4), round(mean + half, 4)],
            "per_seed": [round(float(x), 4) for x in v]}


def paired_differences(runs: list[dict], reference: list[dict], metrics) -> dict:
    """{metric: seed_interval of run − reference}, the rows paired by seed (same order, same length)."""
    return {m: seed_interval([r[m] - c[m] for r, c in zip(runs, reference)]) for m in metrics
            if all(r.get(m) is not None and c.get(m) is not None for r, c in zip(runs, reference))}


def seed_table(rows: list[dict], metrics, reference: str, key: str = "variant") -> dict:
    """Per variant (``row[key]``), in the order they ran: each metric over seeds (mean, sd, 95 %
    t-interval) and, for every other variant, ``minus_<reference>``: its difference from the
    reference variant paired by seed over the seeds both have (a missing seed drops the pair, not
    the variant). Rows carry ``seed`` and the metrics (None where a run has no such figure)."""
    by_variant: dict[str, list[dict]] = {}
    for r in rows:
        by_variant.setdefault(r[key], []).append(r)
    ref = {r["seed"]: r for r in by_variant.get(reference, [])}
    out = {}
    for name, runs in by_variant.items():
        runs = sorted(runs, key=lambda r: r["seed"])
        out[name] = {m: seed_interval([r[m] for r in runs]) for m in metrics if all(r.get(m) is not None for r in runs)}
        paired = [r for r in runs if r["seed"] in ref]
        if name != reference and paired:
            label = "minus_" + reference.replace("-", "_").replace("/", "_")
            out[name][label] = paired_differences(paired, [ref[r["seed"]] for r in paired], metrics)
    return out
