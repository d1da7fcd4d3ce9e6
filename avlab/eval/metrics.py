"""Protocol metrics on score arrays: verification, N-way matching, retrieval.

Pure functions of scores and labels, shared by learned models and by the synthetic oracle, so
both are measured by exactly the same arithmetic.
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve


def verification(scores, labels) -> dict[str, float]:
    """ROC AUC and equal error rate of same/different decisions.

    >>> verification([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0])
    {'auc': 1.0, 'eer': 0.0}
    """
    scores, labels = np.asarray(scores, float), np.asarray(labels, int)
    if len(np.unique(labels)) < 2:
        raise ValueError("verification needs both positive and negative pairs")
    fpr, tpr, _ = roc_curve(labels, scores)
    fnr = 1.0 - tpr
    # EER: where FPR and FNR cross, interpolated linearly between the two ROC points around it.
    k = int(np.flatnonzero(fnr <= fpr)[0])
    if k == 0 or fnr[k] == fpr[k]:
        eer = fpr[k]
    else:
        d0, d1 = fpr[k - 1] - fnr[k - 1], fpr[k] - fnr[k]
        t = d0 / (d0 - d1)
        eer = fpr[k - 1] + t * (fpr[k] - fpr[k - 1])
    return {"auc": float(roc_auc_score(labels, scores)), "eer": float(eer)}


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


def retrieval_map(query_labels, gallery_labels, scores) -> float:
    """Mean over queries of average precision, relevance = same label.

    ``scores`` is (n_queries, n_gallery). Queries without any relevant gallery item are skipped
    (their AP is undefined).

    >>> retrieval_map([0, 1], [0, 1, 1], [[0.9, 0.1, 0.2], [0.8, 0.1, 0.9]])
    0.9166666666666666
    """
    q, g, s = np.asarray(query_labels), np.asarray(gallery_labels), np.asarray(scores, float)
    aps = []
    for i in range(len(q)):
        rel = g == q[i]
        if rel.any():
            aps.append(average_precision_score(rel, s[i]))
    if not aps:
        raise ValueError("no query has a relevant item in the gallery")
    return float(np.mean(aps))
