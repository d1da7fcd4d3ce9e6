"""Score matrices in row blocks, so evaluation memory is set by the block, not by the gallery.

A retrieval protocol scores every query against every gallery item. Building that matrix by
broadcasting ``score(Q[:, None, :], G[None, :, :])`` holds an (n_query, n_gallery, d) tensor —
gigabytes at real sizes — and the full (n_query, n_gallery) matrix is not needed at once either:
every metric here consumes it row by row. So :func:`score_blocks` yields consecutive row blocks of
about :data:`CHUNK_ELEMENTS` scores each: for :func:`cosine` by a matrix product of unit rows, for
any other broadcasting score (the oracle's log-likelihood ratio) by calling it on a block of rows.
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

Score = Callable[[np.ndarray, np.ndarray], np.ndarray]

#: Scores per block. About 4 M: a block, its sorted copy and a relevance mask stay under ~100 MB.
CHUNK_ELEMENTS = 1 << 22


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (with the same 1e-12 guard as :func:`cosine`)."""
    x = np.asarray(x)
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-12)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity over the last axis (broadcasting).

    :func:`score_blocks` recognises this function and scores whole blocks by a matrix product.

    >>> float(cosine(np.array([1.0, 0.0]), np.array([1.0, 1.0])).round(4))
    0.7071
    """
    return (normalise(a) * normalise(b)).sum(-1)


def rows_per_block(width: int, budget: int | None = None) -> int:
    """How many rows of ``width`` elements fit the budget (default :data:`CHUNK_ELEMENTS`; at least one)."""
    return max(1, (budget or CHUNK_ELEMENTS) // max(1, width))


def distinct_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(unique rows, index of each row's copy among them), or (x, None) when no row repeats.

    Why: a matrix product may round two dot products with *equal* vectors differently in the last
    bit (BLAS edge kernels), which would split a tie that the elementwise score kept — and tied
    scores change average precision. Scoring each distinct vector once keeps equal vectors tied,
    and saves work when a gallery repeats vectors (the oracle's identity-level embeddings).
    """
    x = np.ascontiguousarray(x)
    flat = x.reshape(len(x), -1)
    keys = flat.view(np.dtype((np.void, flat.dtype.itemsize * flat.shape[1]))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return (x, None) if len(first) == len(x) else (x[first], inverse.ravel())


def score_blocks(queries: np.ndarray, gallery: np.ndarray, score: Score = cosine, swap: bool = False,
                 budget: int | None = None) -> Iterator[np.ndarray]:
    """Consecutive row blocks of the (len(queries), len(gallery)) score matrix, ~``budget`` scores each.

    ``score`` is called as ``score(query, item)``, or ``score(item, query)`` with ``swap`` — a score
    need not be symmetric (the oracle's takes a voice first), so faces ranking voices swap.
    """
    queries, gallery = np.asarray(queries), np.asarray(gallery)
    step = rows_per_block(len(gallery), budget)
    gallery, inverse = distinct_rows(gallery)
    block_of = _cosine_scorer(gallery) if score is cosine else _broadcast_scorer(score, gallery, swap, budget)
    for start in range(0, len(queries), step):
        block = block_of(queries[start:start + step])
        yield block if inverse is None else block[:, inverse]


def _cosine_scorer(gallery: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Unit gallery rows once, then one matrix product per block (cosine is symmetric: no swap)."""
    g_t = normalise(gallery).T
    return lambda q: normalise(q) @ g_t


def _broadcast_scorer(score: Score, gallery: np.ndarray, swap: bool, budget: int | None):
    """A broadcasting score on (rows, 1, d) × (1, cols, d) tiles of at most ``budget`` elements:
    the embedding axis must never be broadcast over a whole block of scores."""
    width = gallery[0].size if len(gallery) else 1
    cols = rows_per_block(width, budget)
    rows = rows_per_block(min(len(gallery), cols) * width, budget)

    def tile(q, t):
        return score(t, q) if swap else score(q, t)

    def row_block(q):
        return np.concatenate([tile(q, gallery[None, j:j + cols]) for j in range(0, len(gallery), cols)], axis=1)

    def block(q):
        return np.concatenate([row_block(q[i:i + rows, None]) for i in range(0, len(q), rows)])

    return block
