"""Nested metric dicts (``{"unseen_unheard": {"verification": {"U": {"auc": 0.8}}}}``) as flat keys."""
from __future__ import annotations


def flatten(tree: dict, prefix: str = "") -> dict[str, float]:
    """{"unseen_unheard/verification/U/auc": 0.8, …}

    >>> flatten({"a": {"b": 1.0, "c": {"d": 2.0}}})
    {'a/b': 1.0, 'a/c/d': 2.0}
    """
    out = {}
    for k, v in tree.items():
        key = f"{prefix}/{k}" if prefix else str(k)
        out.update(flatten(v, key) if isinstance(v, dict) else {key: v})
    return out


def gap_closed(model: dict, chance: dict, oracle: dict) -> dict[str, float]:
    """(model − chance) / (oracle − chance) per metric found in all three (EER included: lower is
    better for both model and oracle, so the same formula holds)."""
    m, c, o = flatten(model), flatten(chance), flatten(oracle)
    return {k: (m[k] - c[k]) / (o[k] - c[k]) for k in m
            if k in c and k in o and isinstance(m[k], float) and abs(o[k] - c[k]) > 1e-9}
