"""Protocol metrics on score arrays: verification, N-way matching, retrieval.

Pure functions of scores and labels, shared by learned models and by the synthetic oracle, so
both are measured by exactly the same arithmetic. Vectorised throughout: retrieval sorts each
block of query rows once (:func:`query_aps`) instead of looping over queries, so a 20k × 20k
gallery costs one pass over row blocks of the score matrix and the memory of one block.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from avlab.eval.similarity import rows_per_block


def verification(scores, labels) -> dict[str, float]:
    """ROC AUC and equal error rate of same/different decisions.

    Plain numpy rather than sklearn's ``roc_curve`` / ``roc_auc_score`` (same figures, tested
    against them): a bootstrap calls this hundreds of times, and sklearn's input checks cost
    milliseconds a call.

    >>> verification([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0])
    {'auc': 1.0, 'eer': 0.0}
    """
    scores, labels = np.asarray(scores, float), np.asarray(labels, int)
    if len(np.unique(labels)) < 2:
        raise ValueError("verification needs both positive and negative pairs")
    fpr, tpr = roc_points(scores, labels == labels.max())
    fnr = 1.0 - tpr
    # EER: where FPR and FNR cross, interpolated linearly between the two ROC points around it.
    k = int(np.flatnonzero(fnr <= fpr)[0])
    if k == 0 or fnr[k] == fpr[k]:
        eer = fpr[k]
    else:
        d0, d1 = fpr[k - 1] - fnr[k - 1], fpr[k] - fnr[k]
        t = d0 / (d0 - d1)
        eer = fpr[k - 1] + t * (fpr[k] - fpr[k - 1])
    return {"auc": float(np.trapezoid(tpr, fpr)), "eer": float(eer)}


def roc_points(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) at every distinct threshold, from (0, 0): accepting all pairs scored ≥ t.

    Tied scores form one threshold (one ROC step), as in sklearn's ``roc_curve``; collinear
    points are kept, which changes neither the curve's area nor where it crosses FPR = FNR.
    """
    order = np.argsort(-scores, kind="stable")
    s, pos = scores[order], positive[order]
    group_end = np.r_[s[1:] != s[:-1], True]
    tps, fps = np.cumsum(pos)[group_end], np.cumsum(~pos)[group_end]
    return np.r_[0, fps] / fps[-1], np.r_[0, tps] / tps[-1]


def matching_accuracy(scores) -> float:
    """Accuracy of picking column 0 (the true match) among N candidates per row.

    Ties with the best are broken uniformly at random in expectation, so a constant scorer gets
    exactly 1/N — the chance level.

    >>> matching_accuracy([[0.9, 0.1], [0.2, 0.5], [0.4, 0.4]])
    0.5
    """
    s = np.asarray(scores, float)
    if s.ndim != 2 or s.shape[1] < 2:
        raise ValueError(f"matching needs an (n, N>=2) score array, got shape {s.shape}")
    best = s.max(axis=1)
    true_is_best = s[:, 0] >= best
    n_tied = (s == best[:, None]).sum(axis=1)
    return float(np.mean(np.where(true_is_best, 1.0 / n_tied, 0.0)))


def matching_curve(scores, n_max: int | None = None) -> dict[int, float]:
    """1:N accuracy for N = 2 … n_max, using the first N−1 negatives of each row."""
    s = np.asarray(scores, float)
    n_max = n_max or s.shape[1]
    return {n: matching_accuracy(s[:, :n]) for n in range(2, n_max + 1)}


def average_precision(scores, relevant) -> np.ndarray:
    """Average precision of each row: sklearn's ``average_precision_score`` per row, vectorised.

    Tied scores are grouped as sklearn groups thresholds: every relevant item counts the
    precision over all items scored at least as high as it, ties included. Rows without a
    relevant item get NaN (AP is undefined there). Scores must be finite.

    >>> average_precision([[0.9, 0.1, 0.2], [0.8, 0.1, 0.9]], [[1, 0, 0], [0, 1, 1]]).tolist()
    [1.0, 0.8333333333333333]
    """
    s = np.asarray(scores)
    return _average_precision_sorted(s, np.sort(s, axis=1), *np.nonzero(np.asarray(relevant, bool)))


def _average_precision_sorted(scores, sorted_scores, rows, cols) -> np.ndarray:
    """AP per row given each row already sorted once — so several relevance labellings share a sort.

    ``(rows, cols)`` are the relevant entries, grouped by row. AP = (1/R) Σ over relevant i of
    TP(≥ s_i) / N(≥ s_i): counts of relevant items and of all items scored at least s_i, found by
    binary search in the sorted rows.
    """
    top, n_rel = _relevant_scores(scores, rows, cols)
    real = np.arange(top.shape[1]) >= top.shape[1] - n_rel[:, None]
    n_ge = scores.shape[1] - _count_below(sorted_scores, top)
    tp_ge = top.shape[1] - _count_below(top, top)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(real, tp_ge / n_ge, 0.0).sum(axis=1) / n_rel


def _relevant_scores(scores, rows, cols) -> tuple[np.ndarray, np.ndarray]:
    """(b, R_max) ascending scores of each row's relevant items, left-padded with −inf; R per row."""
    n_rel = np.bincount(rows, minlength=len(scores))
    width = int(n_rel.max(initial=0))
    within = _rank_within_group(n_rel)
    top = np.full((len(scores), width), -np.inf, dtype=scores.dtype)
    top[rows, width - n_rel[rows] + within] = scores[rows, cols]
    top.sort(axis=1)
    return top, n_rel


def _count_below(sorted_rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per row, how many entries of ascending ``sorted_rows`` are < each of ``values``.

    ``np.searchsorted(row, v, "left")`` for every row at once: a binary search vectorised across rows.
    """
    width = sorted_rows.shape[1]
    lo = np.zeros(values.shape, np.intp)
    hi = np.full(values.shape, width, np.intp)
    for _ in range(width.bit_length()):
        mid = (lo + hi) // 2
        below = np.take_along_axis(sorted_rows, np.minimum(mid, width - 1), axis=1) < values
        open_ = lo < hi
        lo = np.where(open_ & below, mid + 1, lo)
        hi = np.where(open_ & ~below, mid, hi)
    return lo


def query_aps(query_labels, gallery_labels, blocks: Iterable[np.ndarray]) -> np.ndarray:
    """Average precision of every query, relevance = same label, from row blocks of the scores.

    ``blocks`` are consecutive (rows, n_gallery) blocks covering the queries in order (see
    :func:`avlab.eval.similarity.score_blocks`), so memory is one block. ``gallery_labels`` may be
    (k, n_gallery) — k labellings of one gallery, e.g. identity permutations for a null — then
    the result is (k, n_query) and each block is sorted once for all of them. NaN marks queries
    with no relevant item.
    """
    q, g = _codes(query_labels, gallery_labels)
    labellings = np.atleast_2d(g)
    out = np.full((len(labellings), len(q)), np.nan)
    start = 0
    for block in blocks:
        block = np.asarray(block)
        stop = start + len(block)
        ordered = np.sort(block, axis=1)
        for k, labels in enumerate(labellings):
            out[k, start:stop] = _average_precision_sorted(block, ordered, *_same_label(q[start:stop], labels))
        start = stop
    if start != len(q):
        raise ValueError(f"score blocks cover {start} rows, but there are {len(q)} queries")
    return out if np.ndim(g) == 2 else out[0]


def _same_label(query_codes: np.ndarray, gallery_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of every (query, gallery item) pair with equal codes, grouped by row.

    Built from the gallery grouped by label, so it costs the number of pairs, not rows × gallery.
    """
    by_label = np.argsort(gallery_codes, kind="stable")
    count = np.bincount(gallery_codes, minlength=int(query_codes.max(initial=-1)) + 1)
    first = np.cumsum(count) - count
    n_rel = count[query_codes] if len(count) else np.zeros(len(query_codes), np.intp)
    rows = np.repeat(np.arange(len(query_codes)), n_rel)
    return rows, by_label[np.repeat(first[query_codes], n_rel) + _rank_within_group(n_rel)]


def _rank_within_group(sizes: np.ndarray) -> np.ndarray:
    """0, 1, …, size−1 for each group in turn.

    >>> _rank_within_group(np.array([2, 0, 3])).tolist()
    [0, 1, 0, 1, 2]
    """
    return np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)


def _codes(query_labels, gallery_labels) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of both label arrays, from one shared vocabulary (cheap equality tests)."""
    q, g = np.asarray(query_labels), np.asarray(gallery_labels)
    _, codes = np.unique(np.concatenate([q.ravel(), g.ravel()]), return_inverse=True)
    return codes[:q.size].reshape(q.shape), codes[q.size:].reshape(g.shape)


def mean_ap(aps) -> float:
    """Mean of per-query APs, skipping undefined ones (queries without a relevant item)."""
    aps = np.asarray(aps, float)
    if np.isnan(aps).all():
        raise ValueError("no query has a relevant item in the gallery")
    return float(np.nanmean(aps))


def retrieval_map(query_labels, gallery_labels, scores) -> float:
    """Mean over queries of average precision, relevance = same label.

    ``scores`` is (n_queries, n_gallery). Queries without any relevant gallery item are skipped
    (their AP is undefined). Computed in row blocks (see :func:`query_aps`).

    >>> retrieval_map([0, 1], [0, 1, 1], [[0.9, 0.1, 0.2], [0.8, 0.1, 0.9]])
    0.9166666666666666
    """
    s = np.asarray(scores, float)
    step = rows_per_block(s.shape[1])
    return mean_ap(query_aps(query_labels, gallery_labels, (s[i:i + step] for i in range(0, len(s), step))))
