"""k-means: the released code's first-K Lloyd variant against a brute-force replay, and cluster_bank."""
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from avlab.cluster import cluster_bank, kmeans, lloyd_first_k


def _released_lloyd(points, k, niter):
    """experiments/cmpc/keops_kmeans.py::KMeans replayed with Python floats.

    Centroids = the first k points; each iteration assigns by squared Euclidean distance with the
    KeOps argmin (start from +inf, replace on strict '<', so ties keep the lowest index and a NaN
    distance never wins), then sets each centroid to the mean of its points — 0/0 = NaN for an
    empty cluster. Returns (centroids, cl, Dist) like the released function.
    """
    cents = [[float(v) for v in p] for p in points[:k]]
    for _ in range(niter):
        cl, dist = [], []
        for p in points:
            best, arg = math.inf, 0
            for j, c in enumerate(cents):
                d = sum((a - b) ** 2 for a, b in zip(p, c))
                if d < best:
                    best, arg = d, j
            cl.append(arg)
            dist.append(best)
        for j in range(k):
            members = [p for p, c in zip(points, cl) if c == j]
            cents[j] = [sum(col) / len(members) for col in zip(*members)] if members else [math.nan] * len(points[0])
    return cents, cl, dist


# Hand-made: cluster 2 starts at (3, 3), wins (3, 3) and (6, 3) in the first assignment, moves to
# (4.5, 3) and loses both in the second ((3, 3) → (2, 2), (6, 3) → (6, 4.25)): it empties mid-run.
EMPTYING = [(5, 6), (3, 2), (3, 3), (8, 3), (1, 2), (6, 3), (5, 4), (6, 4)]


def test_first_k_equals_brute_force_lloyd_on_a_hand_made_set_where_a_cluster_empties():
    x = torch.tensor(EMPTYING, dtype=torch.float64)
    for niter in (1, 2, 5):
        ref_c, ref_cl, ref_d = _released_lloyd(EMPTYING, 3, niter)
        c, a, sq = lloyd_first_k(x, 3, niter)
        assert a.tolist() == ref_cl
        np.testing.assert_allclose(sq.numpy(), ref_d, rtol=1e-12, atol=1e-12)
        for j in range(3):
            if math.isnan(ref_c[j][0]):
                continue
            np.testing.assert_allclose(c[j].numpy(), ref_c[j], rtol=1e-12)
    # After iteration 1: cluster 2 = {(3,3), (6,3)} → (4.5, 3); iteration 2 empties it for good.
    _, a1, _ = lloyd_first_k(x, 3, 1)
    assert a1.tolist() == [0, 1, 2, 0, 1, 2, 0, 0]
    ref_c, ref_cl, _ = _released_lloyd(EMPTYING, 3, 5)
    c, a, _ = lloyd_first_k(x, 3, 5)
    assert 2 not in a.tolist() and 2 not in ref_cl  # stays empty
    assert math.isnan(ref_c[2][0])  # the released code holds NaN there ...
    assert c[2].tolist() == [4.5, 3.0]  # ... ours keeps the centroid it had when it emptied


def test_duplicate_first_rows_leave_a_cluster_empty_from_the_start():
    pts = [(0, 0), (0, 0), (4, 0), (1, 0), (5, 0), (0, 1)]
    x = torch.tensor(pts, dtype=torch.float64)
    ref_c, ref_cl, _ = _released_lloyd(pts, 3, 4)
    c, a, _ = lloyd_first_k(x, 3, 4)
    assert a.tolist() == ref_cl and 1 not in ref_cl  # tie → lowest index: cluster 1 never wins
    assert math.isnan(ref_c[1][0]) and c[1].tolist() == [0.0, 0.0]
    np.testing.assert_allclose(c[[0, 2]].numpy(), [ref_c[0], ref_c[2]])


def test_first_k_equals_brute_force_on_random_data_and_kmeans_wraps_it():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(40, 3))
    ref_c, ref_cl, ref_d = _released_lloyd(x.tolist(), 6, 20)
    c, a, sq = lloyd_first_k(torch.from_numpy(x), 6, 20)
    assert a.tolist() == ref_cl
    alive = [j for j in range(6) if not math.isnan(ref_c[j][0])]
    np.testing.assert_allclose(c[alive].numpy(), np.array(ref_c)[alive], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(sq.numpy(), ref_d, rtol=1e-9, atol=1e-12)
    c2, a2 = kmeans(x, 6, 20, init="first_k")
    np.testing.assert_array_equal(a2, a.numpy())
    np.testing.assert_allclose(c2, c.numpy())
    assert a2.dtype == np.int64
    with pytest.raises(ValueError, match="init"):
        kmeans(x, 6, init="random")
    with pytest.raises(ValueError, match="clusters"):
        kmeans(x[:3], 5, init="first_k")
    with pytest.raises(ValueError, match="iteration"):
        lloyd_first_k(torch.from_numpy(x), 3, 0)


def test_first_k_chunked_assignment_step_gives_the_same_result():
    x = torch.from_numpy(np.random.default_rng(7).normal(size=(37, 4)))
    ref = lloyd_first_k(x, 5, 10)
    for chunk in (1, 5, 11, 10**6):  # 1 → one row per block
        got = lloyd_first_k(x, 5, 10, chunk_elems=chunk)
        for r, g in zip(ref, got):
            torch.testing.assert_close(g, r)


def _released_density(cl, dist, k, temperature=0.2):
    """keops_kmeans.py::run_kmeans's concentration, from the k-means' own Dist (squared)."""
    groups = [[] for _ in range(k)]
    for i, c in enumerate(cl):
        groups[c].append(dist[i])
    dens = np.zeros(k)
    for i, d in enumerate(groups):
        if len(d) > 1:
            dens[i] = (np.asarray(d) ** 0.5).mean() / np.log(len(d) + 10)
    dmax = dens.max()
    for i, d in enumerate(groups):
        if len(d) <= 1:
            dens[i] = dmax
    dens = dens.clip(np.percentile(dens, 10), np.percentile(dens, 90))
    return temperature * dens / dens.mean()


def test_cluster_bank_first_k_matches_the_released_clustering_and_density():
    rng = np.random.default_rng(6)
    bank = torch.nn.functional.normalize(torch.from_numpy(rng.normal(size=(60, 4))).float(), dim=1)
    got = cluster_bank(bank, [3, 7], niter=20, init="first_k")
    for g, k in enumerate([3, 7]):
        ref_c, ref_cl, ref_d = _released_lloyd(bank.double().tolist(), k, 20)
        assert got.assign[g].tolist() == ref_cl
        assert got.centroids[g].dtype == torch.float32 and got.centroids[g].shape == (k, 4)
        np.testing.assert_allclose(got.phi[g].numpy(), _released_density(ref_cl, ref_d, k), rtol=1e-4)


def test_cluster_bank_default_is_faiss_and_rejects_unknown_init():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 5)) * 10
    labels = np.repeat(np.arange(3), 20)
    bank = torch.from_numpy(centres[labels] + rng.normal(size=(60, 5))).float()
    faiss_c = cluster_bank(bank, [3], seed=1)
    assert adjusted_rand_score(labels, faiss_c.assign[0].numpy()) == 1.0
    _, a = kmeans(bank.numpy(), 3, seed=1)
    np.testing.assert_array_equal(faiss_c.assign[0].numpy(), a)
    with pytest.raises(ValueError, match="init"):
        cluster_bank(bank, [3], init="kmeans++")
