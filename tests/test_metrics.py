"""Protocol metrics against independent computations (sklearn, brute force, hand-worked cases)."""
import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from avlab.eval.metrics import (_count_below, average_precision, matching_accuracy, matching_curve, query_aps,
                                retrieval_map, verification)


def brute_force_eer(scores, labels):
    """Scan every threshold; EER where false accepts and false rejects are closest."""
    best = (2.0, None)
    pos, neg = scores[labels == 1], scores[labels == 0]
    for t in np.concatenate([np.unique(scores), [np.inf]]):
        far, frr = np.mean(neg >= t), np.mean(pos < t)
        if abs(far - frr) < best[0]:
            best = (abs(far - frr), (far + frr) / 2)
    return best[1]


@pytest.mark.parametrize("seed", range(5))
def test_verification_matches_sklearn_and_brute_force(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 400)
    scores = labels * rng.uniform(0.2, 1.5) + rng.normal(size=400)
    out = verification(scores, labels)
    assert out["auc"] == pytest.approx(roc_auc_score(labels, scores))
    assert out["eer"] == pytest.approx(brute_force_eer(scores, labels), abs=0.01)


def test_verification_hand_worked():
    # Perfectly separated, then perfectly inverted.
    assert verification([3, 2, 1, 0], [1, 1, 0, 0]) == {"auc": 1.0, "eer": 0.0}
    assert verification([0, 1, 2, 3], [1, 1, 0, 0]) == {"auc": 0.0, "eer": 1.0}
    with pytest.raises(ValueError, match="both positive and negative"):
        verification([1, 2], [1, 1])


def test_matching_accuracy_brute_force_and_ties():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(300, 5))
    expected = np.mean([1.0 if row[0] > row[1:].max() else 0.0 for row in s])
    assert matching_accuracy(s) == pytest.approx(expected)
    assert matching_accuracy(np.zeros((10, 4))) == pytest.approx(0.25)  # constant scorer = chance
    curve = matching_curve(s)
    assert list(curve) == [2, 3, 4, 5]
    assert curve[2] == pytest.approx(matching_accuracy(s[:, :2]))
    with pytest.raises(ValueError):
        matching_accuracy(np.zeros(3))


def test_retrieval_map_equals_per_query_sklearn_loop():
    rng = np.random.default_rng(1)
    q, g = rng.integers(0, 6, 40), rng.integers(0, 6, 70)
    s = rng.normal(size=(40, 70)) + (q[:, None] == g[None, :])
    expected = np.mean([average_precision_score(g == q[i], s[i]) for i in range(40) if (g == q[i]).any()])
    assert retrieval_map(q, g, s) == pytest.approx(expected)


def test_retrieval_map_perfect_ranking_is_one():
    labels = np.array([0, 0, 1, 1, 2])
    assert retrieval_map(labels, labels, (labels[:, None] == labels[None, :]).astype(float)) == 1.0


def sklearn_aps(scores, relevant):
    """The reference: sklearn's average_precision_score row by row (NaN without a relevant item)."""
    return np.array([average_precision_score(r, s) if r.any() else np.nan for s, r in zip(scores, relevant)])


@pytest.mark.parametrize("levels", [None, 2, 3, 7])
def test_average_precision_equals_sklearn_with_ties(levels):
    """``levels`` rounds scores onto a few values: many tied groups, mixed relevance inside them."""
    rng = np.random.default_rng(levels or 0)
    relevant = rng.random((60, 45)) < rng.uniform(0.02, 0.6, (60, 1))
    scores = rng.normal(size=(60, 45)) + relevant
    if levels:
        scores = np.round(scores * levels / 4)
    np.testing.assert_allclose(average_precision(scores, relevant), sklearn_aps(scores, relevant), atol=1e-12)


def test_average_precision_hand_worked_ties_and_edge_rows():
    # Row 0: relevant item tied with one irrelevant at the top: precision 1/2 at the group, AP = 0.5.
    # Row 1: all three tied, two relevant: one threshold, precision 2/3.
    # Row 2: no relevant item: undefined. Row 3: all relevant: 1.
    ap = average_precision([[1.0, 1.0, 0.0], [5.0, 5.0, 5.0], [1.0, 2.0, 3.0], [0.0, 1.0, 2.0]],
                           [[1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 1, 1]])
    np.testing.assert_allclose(ap, [0.5, 2 / 3, np.nan, 1.0])


def test_count_below_is_searchsorted_per_row():
    rng = np.random.default_rng(3)
    rows = np.sort(rng.integers(0, 9, (20, 33)).astype(float), axis=1)
    values = rng.integers(-1, 11, (20, 5)).astype(float)
    expected = np.stack([np.searchsorted(r, v, side="left") for r, v in zip(rows, values)])
    np.testing.assert_array_equal(_count_below(rows, values), expected)


def test_query_aps_blocks_and_labellings():
    """Any split into row blocks gives the same APs; k gallery labellings = k separate calls."""
    rng = np.random.default_rng(4)
    q, g = rng.integers(0, 5, 30).astype(str), rng.integers(0, 5, 50).astype(str)
    s = np.round(rng.normal(size=(30, 50)), 1)
    whole = query_aps(q, g, [s])
    np.testing.assert_allclose(whole, query_aps(q, g, [s[:7], s[7:8], s[8:]]), rtol=1e-14)
    np.testing.assert_allclose(whole, sklearn_aps(s, g[None, :] == q[:, None]), atol=1e-12)
    relabelled = np.stack([g, rng.permutation(g)])
    both = query_aps(q, relabelled, [s[:11], s[11:]])
    assert both.shape == (2, 30)
    np.testing.assert_allclose(both[1], query_aps(q, relabelled[1], [s]), rtol=1e-14)
    with pytest.raises(ValueError, match="cover"):
        query_aps(q, g, [s[:10]])


def test_retrieval_map_with_ties_equals_sklearn_loop():
    rng = np.random.default_rng(5)
    q, g = rng.integers(0, 4, 25), rng.integers(0, 4, 40)
    s = rng.integers(0, 3, (25, 40)).astype(float)  # heavy ties
    expected = np.mean([average_precision_score(g == q[i], s[i]) for i in range(25) if (g == q[i]).any()])
    assert retrieval_map(q, g, s) == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match="no query"):
        retrieval_map([9], [0, 1], [[0.1, 0.2]])


def old_sklearn_verification(scores, labels):
    """The implementation before the numpy ROC: sklearn's roc_curve and roc_auc_score."""
    fpr, tpr, _ = roc_curve(labels, scores)
    fnr = 1.0 - tpr
    k = int(np.flatnonzero(fnr <= fpr)[0])
    if k == 0 or fnr[k] == fpr[k]:
        eer = fpr[k]
    else:
        d0, d1 = fpr[k - 1] - fnr[k - 1], fpr[k] - fnr[k]
        eer = fpr[k - 1] + d0 / (d0 - d1) * (fpr[k] - fpr[k - 1])
    return {"auc": roc_auc_score(labels, scores), "eer": eer}


@pytest.mark.parametrize("seed, levels", [(0, None), (1, None), (2, 3), (3, 1), (4, 8)])
def test_verification_equals_the_sklearn_implementation_with_ties(seed, levels):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 300)
    scores = labels * rng.uniform(0, 1.5) + rng.normal(size=300)
    if levels:
        scores = np.round(scores * levels)
    got, expected = verification(scores, labels), old_sklearn_verification(scores, labels)
    assert got["auc"] == pytest.approx(expected["auc"], abs=1e-12)
    assert got["eer"] == pytest.approx(expected["eer"], abs=1e-12)
