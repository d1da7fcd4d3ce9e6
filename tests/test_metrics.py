"""Protocol metrics against independent computations (sklearn, brute force, hand-worked cases)."""
import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from avlab.eval.metrics import matching_accuracy, matching_curve, retrieval_map, verification


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
