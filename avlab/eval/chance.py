"""Chance reference points for the voice-face protocol, beside every figure (DESIGN §3).

Two kinds, both deterministic:

* **analytic chance** — what a scorer that knows nothing gets in expectation, in closed form from
  the lists alone: verification AUC 0.5 and EER 0.5, 1:N matching 1/N, and retrieval mAP = the
  expected AP of a uniformly random ranking given each query's number of relevant items
  (:func:`expected_random_ap`). No random vectors, no repeated protocol runs.
* **identity-permutation null** (``retrieval_map_null``, only when embeddings are given) — the
  real embeddings and scores, but the gallery's identity labels relabelled by a seeded random
  permutation of its identities. Each gallery cluster stays intact (the embeddings' identity
  structure is kept) yet answers to the wrong queries, so this is the mAP that structure alone
  earns, which can sit above the analytic value when clusters differ in size.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from avlab.eval.metrics import mean_ap, query_aps
from avlab.eval.similarity import Score, cosine
from avlab.eval.voiceface import (SPLIT_TAGS, ListFile, list_files, nest, read_matching, read_retrieval,
                                  retrieval_directions)


def expected_random_ap(n_relevant, n_gallery: int) -> np.ndarray:
    """E[AP] of a uniformly random ranking of ``n_gallery`` items of which ``n_relevant`` are relevant.

    AP = (1/R) Σ_i Σ_j [pos_j ≤ pos_i] / pos_i over relevant i, j. Each relevant item's position is
    uniform on 1…N, so E[1/pos_i] = H_N / N (the j = i terms), and for j ≠ i
    E[[pos_j < pos_i] / pos_i] = Σ_p (1/N)·((p−1)/(N−1))/p = (N − H_N) / (N(N−1)). Hence

        E[AP] = H_N / N + (R − 1)(N − H_N) / (N(N − 1)),

    which is H_N / N for R = 1 and 1 for R = N.

    >>> float(expected_random_ap(1, 2)), float(expected_random_ap(2, 2))
    (0.75, 1.0)
    """
    r, n = np.asarray(n_relevant, float), int(n_gallery)
    h = np.sum(1.0 / np.arange(1, n + 1))
    pairs = (n - h) / (n * (n - 1)) if n > 1 else 0.0
    return h / n + (r - 1) * pairs


def random_ranking_map(query_labels, gallery_labels) -> float:
    """Expected mAP of random rankings: mean of :func:`expected_random_ap` over queries with R ≥ 1
    (the queries :func:`~avlab.eval.metrics.retrieval_map` averages)."""
    ids, codes = np.unique(np.concatenate([np.asarray(query_labels), np.asarray(gallery_labels)]), return_inverse=True)
    q, g = codes[:len(query_labels)], codes[len(query_labels):]
    n_rel = np.bincount(g, minlength=len(ids))[q]
    return float(np.mean(expected_random_ap(n_rel[n_rel > 0], len(g))))


def permuted_identities(labels, n_perm: int, rng: np.random.Generator) -> np.ndarray:
    """(n_perm, n) copies of ``labels`` with the identities relabelled by random permutations.

    Identities are taken in sorted order, so the result depends on the generator only (never on
    string hashing or set order).
    """
    ids, codes = np.unique(np.asarray(labels), return_inverse=True)
    perms = rng.permuted(np.tile(np.arange(len(ids)), (n_perm, 1)), axis=1)
    return ids[perms[:, codes.ravel()]]


def _matching_chance(lf: ListFile):
    rows = read_matching(lf.paths[0])
    n_cand = len(rows[0]) - 1
    if lf.keys[0] == "matching_1toN":
        return {str(n): 1.0 / n for n in range(2, n_cand + 1)}
    return 1.0 / n_cand


def _retrieval_chance(lf: ListFile) -> dict[str, float]:
    v_id, f_id = ([r[1] for r in read_retrieval(p)] for p in lf.paths)
    return {"v2f": random_ranking_map(v_id, f_id), "f2v": random_ranking_map(f_id, v_id)}


def _retrieval_null(lf: ListFile, voice_emb: dict, face_emb: dict, score: Score, n_perm: int,
                    rng: np.random.Generator) -> dict[str, float]:
    """mAP of the real scores against ``n_perm`` identity-permuted galleries, averaged (one sort per block)."""
    out = {}
    for r in retrieval_directions(lf, voice_emb, face_emb):
        aps = query_aps(r.query_ids, permuted_identities(r.gallery_ids, n_perm, rng), r.blocks(score))
        out[r.direction] = float(np.mean([mean_ap(a) for a in aps]))
    return out


def chance_metrics(lists_dir: str | Path, voice_emb: dict | None = None, face_emb: dict | None = None,
                   seed: int = 0, score: Score = cosine, n_perm: int = 5) -> dict:
    """Chance figures in the tree of :func:`~avlab.eval.voiceface.evaluate_lists`.

    Every leaf of that tree gets its analytic chance value (module docstring). With both
    embedding dicts, each split also gets ``retrieval_map_null`` = {"v2f", "f2v"}: the
    identity-permutation null, the mean over ``n_perm`` permutations drawn from
    ``default_rng([seed, split index])`` — the same figures for the same seed.
    """
    results: dict = {}
    for lf in list_files(lists_dir):
        nest(results, (lf.split, *lf.keys), _ANALYTIC[lf.kind](lf))
        if lf.kind == "retrieval" and voice_emb is not None and face_emb is not None:
            rng = np.random.default_rng([seed, list(SPLIT_TAGS).index(lf.split)])
            null = _retrieval_null(lf, voice_emb, face_emb, score, n_perm, rng)
            nest(results, (lf.split, "retrieval_map_null"), null)
    return results


_ANALYTIC = {"verification": lambda lf: {"auc": 0.5, "eer": 0.5}, "matching": _matching_chance,
             "retrieval": _retrieval_chance}
