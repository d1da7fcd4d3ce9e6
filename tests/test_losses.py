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


def _hand_case():
    # Two 2-D prototypes on the axes (normalised inside: e1, e2); sample 0 in cluster 0, sample 1
    # in cluster 1; φ_0 = 0.5, φ_1 = 0.25. Similarities s = [[1, 0], [1/√2, 1/√2]].
    protos = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    anchor = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    return anchor, protos, torch.tensor([0, 1]), torch.tensor([0.5, 0.25])


def test_prototype_loss_hand_worked_prototype_placement_is_the_default():
    anchor, protos, assign, phi = _hand_case()
    got = prototype_loss(anchor, protos, assign, phi)
    # Column j scaled by φ_{c(j)}. Row 0: [1/0.5, 0/0.25] = [2, 0], target 0.
    # Row 1: [(1/√2)/0.5, (1/√2)/0.25] = [√2, 2√2], target 1 → log(1 + e^{−√2}).
    r2 = math.sqrt(2)
    assert got[0].item() == pytest.approx(-2 + math.log(math.e**2 + 1), rel=1e-6)
    assert got[1].item() == pytest.approx(math.log(1 + math.exp(-r2)), rel=1e-6)
    torch.testing.assert_close(prototype_loss(anchor, protos, assign, phi, "prototype"), got)


def test_prototype_loss_hand_worked_anchor_placement():
    anchor, protos, assign, phi = _hand_case()
    got = prototype_loss(anchor, protos, assign, phi, phi_placement="anchor")
    # Row i scaled by φ_{c(i)}. Row 0: [1, 0]/0.5 → −2 + log(e² + 1); row 1: both logits equal → log 2.
    assert got[0].item() == pytest.approx(-2 + math.log(math.e**2 + 1), rel=1e-6)
    assert got[1].item() == pytest.approx(math.log(2), rel=1e-6)


def test_prototype_loss_hand_worked_official_placement():
    anchor, protos, assign, phi = _hand_case()
    got = prototype_loss(anchor, protos, assign, phi, phi_placement="official")
    # Released: rows reordered to [s_ii, s_ij (j≠i)]: row 0 [1, 0], row 1 [1/√2, 1/√2]; then
    # column k divided by φ_{c(k)}: column 0 by 0.5, column 1 by 0.25. Target column 0.
    # Row 0: [2, 0] → −2 + log(e² + 1).
    # Row 1: [√2, 2√2] → −√2 + log(e^√2 + e^{2√2}) = log(1 + e^√2).
    r2 = math.sqrt(2)
    assert got[0].item() == pytest.approx(-2 + math.log(math.e**2 + 1), rel=1e-6)
    assert got[1].item() == pytest.approx(math.log(1 + math.exp(r2)), rel=1e-6)


def _released_proto_loss_loop(anchor, protos, assign, phi):
    """criterions/cmpc.py::InstProtoCLR.forward for one granularity, element by element."""
    def unit(v):
        n = math.sqrt(sum(t * t for t in v))
        return [t / max(n, 1e-12) for t in v]

    a = [unit(r) for r in anchor.tolist()]
    c = [unit(r) for r in protos.tolist()]
    ids, dens = assign.tolist(), phi.tolist()
    b = len(a)
    pos = [c[ids[j]] for j in range(b)]  # prototypes[inst2cluster[index]]
    sim = [[sum(x * y for x, y in zip(a[i], pos[j])) for j in range(b)] for i in range(b)]
    out = []
    for i in range(b):
        row = [sim[i][i]] + [sim[i][j] for j in range(b) if j != i]  # cat([diag], [off-diag])
        row = [row[k] / dens[ids[k]] for k in range(b)]  # proto_logits /= density[pos_proto_id]
        out.append(-row[0] + math.log(sum(math.exp(v) for v in row)))  # CE, label 0
    return out


def _pcl_loop(anchor, protos, assign, phi):
    """Brute force of the default: logits_ij = â_i·Ĉ_{c(j)} / φ_{c(j)}, target i."""
    a, c = F.normalize(anchor, dim=1).tolist(), F.normalize(protos, dim=1).tolist()
    ids, dens = assign.tolist(), phi.tolist()
    out = []
    for i in range(len(a)):
        row = [sum(x * y for x, y in zip(a[i], c[ids[j]])) / dens[ids[j]] for j in range(len(a))]
        out.append(-row[i] + math.log(sum(math.exp(v) for v in row)))
    return out


def test_prototype_loss_official_replays_the_released_arithmetic():
    torch.manual_seed(3)
    for b in (1, 2, 5, 9):
        anchor = torch.randn(b, 6, dtype=torch.float64)
        protos = torch.randn(4, 6, dtype=torch.float64)
        assign = torch.randint(0, 4, (b,))
        assign[:min(b, 2)] = 2  # shared clusters: the positive prototype reappears among negatives
        phi = torch.rand(4, dtype=torch.float64) * 0.3 + 0.05
        got = prototype_loss(anchor, protos, assign, phi, "official")
        np.testing.assert_allclose(got.numpy(), _released_proto_loss_loop(anchor, protos, assign, phi),
                                   rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(prototype_loss(anchor, protos, assign, phi).numpy(),
                                   _pcl_loop(anchor, protos, assign, phi), rtol=1e-10, atol=1e-12)


def test_prototype_loss_placements_differ_only_through_phi():
    torch.manual_seed(4)
    anchor, protos = torch.randn(7, 5, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64)
    assign = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    flat = torch.full((3,), 0.2, dtype=torch.float64)
    ref = prototype_loss(anchor, protos, assign, flat)
    for placement in ("anchor", "official"):  # one φ for all: column order is irrelevant to CE
        torch.testing.assert_close(prototype_loss(anchor, protos, assign, flat, placement), ref)
    phi = torch.tensor([0.1, 0.2, 0.4], dtype=torch.float64)
    losses = [prototype_loss(anchor, protos, assign, phi, p) for p in ("prototype", "anchor", "official")]
    assert not torch.allclose(losses[0], losses[1]) and not torch.allclose(losses[0], losses[2])
    with pytest.raises(ValueError, match="phi placement"):
        prototype_loss(anchor, protos, assign, phi, "column")


def test_prototype_loss_is_differentiable_in_every_placement():
    anchor = torch.randn(4, 3, requires_grad=True)
    for p in ("prototype", "anchor", "official"):
        anchor.grad = None
        loss = prototype_loss(anchor, torch.randn(2, 3), torch.tensor([0, 1, 1, 0]), torch.tensor([0.1, 0.3]), p)
        loss.sum().backward()
        assert torch.isfinite(anchor.grad).all() and anchor.grad.abs().sum() > 0


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
    # keops_kmeans.py::run_kmeans returns a four-key dict, whatever the number of granularities;
    # criterions/cmpc.py::InstProtoCLR.forward divides by len() of it inside the granularity loop.
    cluster_result = {"inst2cluster": [None] * 3, "centroids": [None] * 3, "Dist": [None] * 3, "density": [None] * 3}
    official = torch.zeros(5)
    for l in losses:
        official += l
        official /= len(cluster_result)
    torch.testing.assert_close(multi_granularity_loss(losses, "official"), official)
    torch.testing.assert_close(multi_granularity_loss(losses, "official"),
                               losses[0] / 64 + losses[1] / 16 + losses[2] / 4)
    torch.testing.assert_close(multi_granularity_loss(losses), sum(losses) / 3)
    torch.testing.assert_close(multi_granularity_loss(losses[:1], "official"), losses[0] / 4)
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
