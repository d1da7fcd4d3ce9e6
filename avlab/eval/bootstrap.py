"""Bootstrap confidence intervals over test identities for every voice-face figure (DESIGN §3).

Rows of one identity are not independent (same voice, same face), so resampling rows would make
intervals too narrow. Instead each replicate draws the split's test identities with replacement
and keeps every row whose probe belongs to a drawn identity, once per draw. Rows are scored once
(:func:`~avlab.eval.voiceface.scored_parts`); a replicate only re-measures resampled row scores —
for retrieval the per-query APs against the fixed gallery. All figures of a split in one replicate
share the same identity draw, and the draws are seeded, so intervals are reproducible.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np

from avlab.eval.similarity import Score, cosine
from avlab.eval.voiceface import SPLIT_TAGS, Part, list_identities, nest, scored_parts

Identity = Callable[[str], str] | Mapping[str, str]


def confidence_intervals(lists_dir: str | Path, voice_emb: dict, face_emb: dict, identity: Identity | None = None,
                         score: Score = cosine, n_boot: int = 200, seed: int = 0, level: float = 0.95) -> dict:
    """Percentile bootstrap intervals ``[lo, hi]`` in the tree of :func:`~avlab.eval.voiceface.evaluate_lists`.

    ``identity`` maps a probe path to its identity (a function or a mapping); by default the
    identities the lists themselves state (:func:`~avlab.eval.voiceface.list_identities`).
    """
    identity = list_identities(lists_dir) if identity is None else identity
    return bootstrap_parts(scored_parts(lists_dir, voice_emb, face_emb, score), identity, n_boot, seed, level)


def bootstrap_parts(parts: Iterable[Part], identity: Identity, n_boot: int = 200, seed: int = 0,
                    level: float = 0.95) -> dict:
    """Intervals for already scored parts — score once, then report both estimates and intervals."""
    id_of = _identity_function(identity)
    by_split: dict[str, list[Part]] = {}
    for part in parts:
        by_split.setdefault(part.split, []).append(part)
    tree: dict = {}
    for split, split_parts in by_split.items():
        probe_ids = [np.array([id_of(p) for p in part.probes]) for part in split_parts]
        ids, codes = np.unique(np.concatenate(probe_ids), return_inverse=True)
        rng = np.random.default_rng([seed, list(SPLIT_TAGS).index(split)])
        counts = identity_counts(len(ids), n_boot, rng)
        offsets = np.cumsum([0] + [len(p) for p in probe_ids])
        for part, lo, hi in zip(split_parts, offsets[:-1], offsets[1:]):
            replicates = [_measure(part, np.repeat(np.arange(hi - lo), c[codes[lo:hi]])) for c in counts]
            nest(tree, (split, *part.keys), percentile_interval(replicates, level))
    return tree


def _identity_function(identity: Identity) -> Callable[[str], str]:
    if not isinstance(identity, Mapping):
        return identity

    def lookup(path: str) -> str:
        try:
            return identity[path]
        except KeyError:
            raise KeyError(f"no identity for probe path {path!r}: pass identity= (a mapping or a function)") from None

    return lookup


def identity_counts(n_identities: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n_identities): how many times each identity is drawn in each replicate."""
    draws = rng.integers(n_identities, size=(n_boot, n_identities))
    flat = draws + n_identities * np.arange(n_boot)[:, None]
    return np.bincount(flat.ravel(), minlength=n_boot * n_identities).reshape(n_boot, n_identities)


def _measure(part: Part, rows: np.ndarray):
    """The part's figure on resampled rows, or None where a resample leaves it undefined
    (e.g. verification rows of one class only, or no rows: a small list whose identities were all
    left out of the resample)."""
    if not len(rows):
        return None
    try:
        return part.metric(rows)
    except ValueError:
        return None


def percentile_interval(replicates: list, level: float = 0.95):
    """[lo, hi] of the central ``level`` share of replicate figures (dicts of figures key by key).

    >>> percentile_interval([{"a": 0.0}, {"a": 1.0}, None, {"a": 2.0}, {"a": 3.0}, {"a": 4.0}], level=0.5)
    {'a': [1.0, 3.0]}
    """
    first = next((r for r in replicates if r is not None), None)
    if isinstance(first, dict):
        return {k: percentile_interval([None if r is None else r[k] for r in replicates], level) for k in first}
    values = np.array([np.nan if r is None else r for r in replicates], float)
    values = values[~np.isnan(values)]
    if not len(values):
        return [float("nan"), float("nan")]
    tail = 50.0 * (1.0 - level)
    return [float(v) for v in np.percentile(values, [tail, 100.0 - tail])]
