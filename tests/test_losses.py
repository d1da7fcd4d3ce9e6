"""Losses against brute-force loops, hand-worked cases and the released CMPC code's arithmetic."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import adjusted_rand_score

from avlab.cluster import cluster_bank, kmeans
from avlab.losses.infonce import cross_modal_info_nce, info_nce
from avlab.losses.prototype import concentration, multi_granularity_loss, prototype_loss
from avlab.losses.recalibration import prototype_agreement, recalibration_weights, weighted_mean


def test_info_nce_equals_a_brute_force_loop():
    torch.manual_seed(0)
    a, p, t = torch.randn(6, 5), torch.randn(6, 5), 0.1
    got = info_nce(a, p, t)
    for i in range(6):
        sims = [float(F.cosine_similarity(a[i], p[j], dim=0)) / t for j in range(6)]
        expected = -sims[i] + math.log(sum(math.exp(s) for s in sims))
        assert got[i].item() == pytest.approx(expected, rel=1e-5)
    v2f, f2v = cross_modal_info_nce(a, p, t)
    assert torch.allclose(v2f, got) and torch.allclose(f2v, info_nce(p, a, t))


def test_prototype_loss_hand_worked():
    # Two 2-D prototypes on the axes; anchors; sample 0 in cluster 0, sample 1 in cluster 1.
    protos = torch.tensor([[2.0, 0.0], [0.0, 3.0]])  # normalised inside: e1, e2
    anchor = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    assign = torch.tensor([0, 1])
    phi = torch.tensor([0.5, 0.25])
    got = prototype_loss(anchor, protos, assign, phi)
    # Row 0: logits = [1, 0] / φ_0 = [2, 0] → -2 + log(e² + 1)
    # Row 1: â = (1,1)/√2, logits = [1/√2, 1/√2] / φ_1 → both equal → log 2
    assert got[0].item() == pytest.approx(-2 + math.log(math.e**2 + 1), rel=1e-6)
    assert got[1].item() == pytest.approx(math.log(2), rel=1e-6)


def test_concentration_hand_worked_with_singletons_and_clipping():
    # Cluster 0: two points at distance 1 from the centroid; cluster 1: one point (singleton);
    # cluster 2: three points at distance 2.
    x = np.array([[0, 1], [0, -1], [10, 10], [20, 2], [20, -2], [22, 0]], float)
    cents = np.array([[0, 0], [10, 10], [20, 0]], float)
    assign = np.array([0, 0, 1, 2, 2, 2])
    raw0, raw2 = 1 / math.log(12), (2 + 2 + 2) / 3 / math.log(13)
    raw = np.array([raw0, max(raw0, raw2), raw2])  # the singleton takes the largest φ
    raw = np.clip(raw, np.percentile(raw, 10), np.percentile(raw, 90))
    np.testing.assert_allclose(concentration(x, cents, assign, 0.2), 0.2 * raw / raw.mean(), rtol=1e-9)
    assert concentration(x, cents, assign, 0.2).mean() == pytest.approx(0.2)


def _official_weights(rho, delta=-1.0, ka=0.1):
    """The released code's recalibration (criterions/cmpc.py), restated in numpy."""
    sorted_rho, argsort_rho = np.sort(rho), np.argsort(rho)
    mu, sigma = rho.mean() + delta * rho.std(), rho.std() * ka ** 0.5
    y = (1 / (np.sqrt(2 * np.pi) * sigma)) * np.exp(-0.5 * (1 / sigma * (sorted_rho - mu)) ** 2)
    y = y.cumsum()
    y /= y[-1]
    return y[np.argsort(argsort_rho)]


def test_recalibration_weights_match_the_released_arithmetic_and_are_monotone():
    torch.manual_seed(1)
    v, f = torch.randn(32, 8), torch.randn(32, 8)
    agreement = torch.rand(32) * 0.3
    w = recalibration_weights(v, f, agreement)
    rho = (F.cosine_similarity(v, f) - agreement).double().numpy()
    np.testing.assert_allclose(w.double().numpy(), _official_weights(rho), rtol=1e-5)
    assert (w > 0).all() and (w <= 1).all() and w.max() == pytest.approx(1.0)
    order = np.argsort(rho)
    assert (np.diff(w.numpy()[order]) >= -1e-7).all()


def test_recalibration_carries_no_gradient():
    v = torch.randn(16, 4, requires_grad=True)
    f = torch.randn(16, 4, requires_grad=True)
    w = recalibration_weights(v, f, torch.zeros(16))
    assert not w.requires_grad
    per_sample = (v * f).sum(1)
    weighted_mean(per_sample, w).backward()
    # d/dv of Σ w_i (v_i·f_i) / Σ w = w_i f_i / Σ w: the weights act as constants.
    torch.testing.assert_close(v.grad, w[:, None] * f.detach() / w.sum())


def test_equal_rho_gives_unit_weights():
    x = torch.ones(4, 3)
    assert torch.equal(recalibration_weights(x, x, torch.zeros(4)), torch.ones(4))


def test_granularity_weighting_quirk_reproduces_the_released_loop():
    losses = [torch.rand(5) for _ in range(3)]
    official = torch.zeros(5)
    for l in losses:  # the released code: loss_proto += l; loss_proto /= len(cluster_result) (== 3)
        official += l
        official /= 3
    torch.testing.assert_close(multi_granularity_loss(losses, "official"), official)
    torch.testing.assert_close(multi_granularity_loss(losses, "official"),
                               losses[0] / 27 + losses[1] / 9 + losses[2] / 3)
    torch.testing.assert_close(multi_granularity_loss(losses), sum(losses) / 3)
    with pytest.raises(ValueError):
        multi_granularity_loss(losses, "other")


def test_prototype_agreement_quirk_uses_raw_summed_centroids():
    torch.manual_seed(2)
    vp = [torch.randn(4, 3) * 2 for _ in range(3)]
    fp = [torch.randn(4, 3) * 2 for _ in range(3)]
    raw = sum((v * f).sum(1) for v, f in zip(vp, fp))  # released: Σ_i C^v · C^f, un-normalised
    torch.testing.assert_close(prototype_agreement(vp, fp, "official"), raw)
    cos = sum(F.cosine_similarity(v, f) for v, f in zip(vp, fp)) / 3
    torch.testing.assert_close(prototype_agreement(vp, fp, "mean"), cos)


def test_kmeans_recovers_separated_blobs_and_cluster_bank_shapes():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 8)) * 10
    labels = np.repeat(np.arange(4), 30)
    x = centres[labels] + rng.normal(size=(120, 8))
    _, assign = kmeans(x, 4, seed=1)
    assert adjusted_rand_score(labels, assign) == 1.0
    c = cluster_bank(torch.from_numpy(x).float(), [2, 4])
    assert [t.shape for t in c.centroids] == [(2, 8), (4, 8)] and c.assign[1].shape == (120,)
    with pytest.raises(ValueError, match="clusters"):
        kmeans(x[:3], 5)
