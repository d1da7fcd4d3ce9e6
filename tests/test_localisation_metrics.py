"""Localisation metrics, CMAC's losses and the attention Recorder against brute force and hand-worked cases."""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from avlab.eval import localisation as L
from avlab.losses.attention_consistency import attention_consistency, attention_distance, kl
from avlab.losses.remoulded_contrast import remoulded_contrast
from avlab.models.recorder import AttentionMap, Recorder


# --- cIoU / AUC -----------------------------------------------------------------------------------
def brute_ciou(pred, gt):
    inter = union = 0.0
    for y in range(gt.shape[0]):
        for x in range(gt.shape[1]):
            inter += pred[y, x] * gt[y, x]
            union += gt[y, x] + (pred[y, x] if gt[y, x] == 0 else 0)
    return inter / union


def test_ciou_equals_a_pixel_loop_on_random_maps_and_boxes():
    rng = np.random.default_rng(0)
    for _ in range(20):
        heat = rng.random((4, 4))
        box = sorted(rng.uniform(0, 32, 2)), sorted(rng.uniform(0, 32, 2))
        boxes = [[box[0][0], box[1][0], box[0][1] + 1, box[1][1] + 1]]
        pred = L.prediction(heat, (32, 32))
        gt = L.box_mask(boxes, (32, 32))
        assert L.clip_ciou(heat, boxes, (32, 32)) == pytest.approx(brute_ciou(pred, gt))


def test_hand_made_maps():
    gt = [[8, 8, 16, 16]]  # a 8×8 box in a 32×32 image
    perfect = L.box_mask(gt, (32, 32))
    assert L.clip_ciou(perfect, gt, (32, 32)) == 1.0
    # Half the box predicted and nothing else: 32 / (64 + 0).
    half = L.box_mask([[8, 8, 12, 16]], (32, 32))
    assert L.clip_ciou(half, gt, (32, 32)) == pytest.approx(0.5)
    # A constant map predicts every pixel: 64 / (64 + 960).
    assert L.clip_ciou(np.zeros((4, 4)), gt, (32, 32)) == pytest.approx(64 / 1024)
    # The box plus an equal area elsewhere: 64 / (64 + 64).
    twice = np.maximum(perfect, L.box_mask([[20, 20, 28, 28]], (32, 32)))
    assert L.clip_ciou(twice, gt, (32, 32)) == pytest.approx(0.5)


def test_median_threshold_keeps_the_top_half_of_pixels():
    heat = np.arange(64, dtype=float).reshape(8, 8)
    assert L.prediction(heat, (8, 8), "median").sum() == 32
    with pytest.raises(ValueError, match="threshold"):
        L.prediction(heat, (8, 8), "top")


def test_box_mask_counts_pixel_centres():
    m = L.box_mask([[0.4, 0.6, 2.6, 2.4]], (4, 4))  # x centres 0.5, 1.5, 2.5 in; y only 1.5
    assert m.sum() == 3 and m[1, :3].all()


def test_success_auc_is_sklearn_auc_of_the_success_rates():
    from sklearn.metrics import auc

    c = np.random.default_rng(1).random(50)
    rates = [(c >= t).mean() for t in L.THRESHOLDS]
    assert L.success_auc(c) == pytest.approx(auc(L.THRESHOLDS, rates))
    assert L.summary([1.0, 0.0])["ciou@0.5"] == 0.5 and L.success_auc(np.ones(3)) == pytest.approx(1.0)


def test_box_prior_map_is_the_box_share_of_each_cell():
    m = L.box_prior_map([[0, 0, 16, 8]], (32, 32), (4, 4))
    assert m[0, :2].tolist() == [1.0, 1.0] and m[1].sum() == 0 and m.shape == (4, 4)


def test_frequency_grounding_by_hand():
    edges = np.array([0, 100, 200, 300, 400.0])
    mask = L.band_mask([(120, 260)], edges)  # centres 50, 150, 250, 350
    assert mask.tolist() == [0, 1, 1, 0]
    assert L.band_mass(np.array([0.1, 0.4, 0.3, 0.2]), mask) == pytest.approx(0.7)
    assert L.band_ap(np.array([0.4, 0.3, 0.2, 0.1]), mask) == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_mel_bin_edges_cover_zero_to_nyquist_in_order():
    e = L.mel_bin_edges_hz(64, 16000, 16)
    assert e[0] == 0 and e[-1] == pytest.approx(8000) and np.all(np.diff(e) > 0) and len(e) == 17


# --- attention softmax, consistency ------------------------------------------------------------------
def test_attention_map_softmax_by_hand():
    a = AttentionMap(1)(torch.tensor([[0.0, math.log(3.0)]]))
    torch.testing.assert_close(a, torch.tensor([[0.25, 0.75]]))
    s = torch.zeros(2, 3, 4)
    s[0, 1, 2] = math.log(13.0)  # one cell 13× the other 11: 13/24
    a2 = AttentionMap(2)(s)
    assert a2.shape == s.shape and torch.allclose(a2.sum(dim=(1, 2)), torch.ones(2))
    assert a2[0, 1, 2].item() == pytest.approx(13 / 24)


def test_kl_and_distances_by_hand():
    p, q = torch.tensor([[0.5, 0.5]]), torch.tensor([[0.25, 0.75]])
    expected = 0.5 * math.log(2) + 0.5 * math.log(2 / 3)
    assert kl(p, q).item() == pytest.approx(expected)
    assert attention_distance(p, q, "kl").item() == pytest.approx(expected)
    assert attention_distance(p, q, "reverse_kl").item() == pytest.approx(0.25 * math.log(0.5) + 0.75 * math.log(1.5))
    assert attention_distance(p, q, "l2").item() == pytest.approx(0.125)
    m = torch.tensor([[0.375, 0.625]])
    assert attention_distance(p, q, "js").item() == pytest.approx(0.5 * kl(p, m).item() + 0.5 * kl(q, m).item())
    assert kl(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.5, 0.5]])).item() == pytest.approx(math.log(2))  # 0·log 0 = 0
    with pytest.raises(ValueError, match="distance"):
        attention_distance(p, q, "cosine")


def test_consistency_averages_over_the_batch_and_can_stop_the_target_gradient():
    alpha = torch.softmax(torch.randn(3, 2, 2), -1).requires_grad_()
    beta = torch.softmax(torch.randn(3, 2, 2), -1).requires_grad_()
    loss = attention_consistency(alpha, beta)
    manual = sum(kl(beta[i].reshape(1, -1), alpha[i].reshape(1, -1)) for i in range(3)) / 3
    assert loss.item() == pytest.approx(manual.item(), rel=1e-5)
    attention_consistency(alpha, beta, stop_grad_target=True).backward()
    assert beta.grad is None and alpha.grad is not None


# --- remoulded contrast --------------------------------------------------------------------------------
def brute_remoulded(v, a, tau, within):
    v, a = torch.nn.functional.normalize(v, dim=1), torch.nn.functional.normalize(a, dim=1)
    out = []
    for x, y in ((v, a), (a, v)):
        losses = []
        for i in range(len(x)):
            den = sum(math.exp(float(x[i] @ y[j]) / tau) for j in range(len(x)))
            if within:
                den += sum(math.exp(float(x[i] @ x[j]) / tau) for j in range(len(x)) if j != i)
            losses.append(-(float(x[i] @ y[i]) / tau - math.log(den)))
        out.append(losses)
    return out


@pytest.mark.parametrize("within", [True, False])
def test_remoulded_contrast_denominator_is_the_brute_force_loop(within):
    torch.manual_seed(0)
    v, a = torch.randn(5, 7), torch.randn(5, 7)
    l_va, l_av = remoulded_contrast(v, a, 0.5, within)
    want_va, want_av = brute_remoulded(v, a, 0.5, within)
    assert l_va.tolist() == pytest.approx(want_va, rel=1e-5) and l_av.tolist() == pytest.approx(want_av, rel=1e-5)


def test_remoulded_contrast_takes_precomputed_cross_logits():
    torch.manual_seed(1)
    v, a = torch.randn(4, 3), torch.randn(4, 3)
    cross = torch.nn.functional.normalize(v, dim=1) @ torch.nn.functional.normalize(a, dim=1).T / 0.2
    for x, y in zip(remoulded_contrast(v, a, 0.2, True, cross_logits=cross), remoulded_contrast(v, a, 0.2, True)):
        torch.testing.assert_close(x, y)


# --- Recorder ------------------------------------------------------------------------------------------
class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.att = AttentionMap(1)

    def forward(self, x):
        return self.att(self.lin(x)) * 2


def test_recorder_captures_attention_without_changing_the_output():
    torch.manual_seed(0)
    m, x = Toy(), torch.randn(2, 4)
    plain = m(x)
    with Recorder(m) as rec:
        recorded_out = m(x)
        m(x)
    torch.testing.assert_close(plain, recorded_out)
    torch.testing.assert_close(rec.maps["att"] * 2, plain)
    assert len(rec.history["att"]) == 2 and not rec.maps["att"].requires_grad
    m(x)
    assert len(rec.history["att"]) == 2  # hooks removed on exit
    with Recorder(m, match=lambda name, mod: name == "lin") as rec2:
        m(x)
    assert set(rec2.maps) == {"lin"}
    with pytest.raises(ValueError, match="no module to record"):
        with Recorder(nn.Linear(2, 2)):
            pass


@pytest.mark.parametrize("pool", ["audio_guided", "max"])
def test_cmac_pair_logits_equal_a_loop(pool):
    from avlab.methods import ModelConfig, create_method
    from avlab.methods.base import DataSpec
    from avlab.methods.cmac import CMAC
    from avlab.registry import TASKS

    spec_task = TASKS.get("sound-localisation")
    m = create_method("cmac", DataSpec("sound-localisation", dict(spec_task.modalities), 8, 4), ModelConfig(embed_dim=8),
                      CMAC.Config(visual_pool=pool))
    torch.manual_seed(0)
    V, a = torch.randn(3, 8, 2, 2), torch.randn(3, 8)
    got = m.pair_logits(V, a)
    F = torch.nn.functional
    for i in range(3):
        for j in range(3):
            Vi = V[i].flatten(1)  # (D, N)
            cos = F.normalize(a[j], dim=0) @ F.normalize(Vi, dim=0)  # (N,)
            if pool == "max":  # the best-matching position's cosine
                want = max(F.cosine_similarity(Vi[:, n], a[j], dim=0) for n in range(Vi.shape[1]))
            else:
                pooled = Vi @ torch.softmax(cos / m.cfg.attention_temperature, 0)
                want = F.cosine_similarity(pooled, a[j], dim=0)
            assert got[i, j].item() == pytest.approx(want.item() / m.cfg.temperature, rel=1e-4)


def test_chance_and_oracle_sit_under_each_metrics_key():
    from avlab.eval.tree import flatten
    from avlab.tasks.localisation.protocol import add_oracle_per_metric, add_reference_per_metric

    metrics = {"localisation": {"beta_v": {"auc": 0.3}, "alpha_v": {"auc": 0.2}},
               "frequency": {"alpha_a": {"mass": 0.5, "ap": 0.6}},
               "probe": {"linear": {"audio": 0.7, "image": 0.4}, "knn": {"audio": 0.6}}}
    chance = {"localisation": {"centre_prior": {"ciou@0.5": 0.0, "auc": 0.15, "mean_ciou": 0.14, "n": 9},
                               "uniform": {"ciou@0.5": 0.0, "auc": 0.08, "mean_ciou": 0.08, "n": 9}},
              "frequency": {"mass": 0.08, "ap": 0.23}, "probe": {"classes": 0.1}}
    add_reference_per_metric(chance, metrics, 0.1)
    flat = flatten(chance)
    assert flat["localisation/beta_v/auc"] == flat["localisation/alpha_v/auc"] == 0.15
    assert flat["frequency/alpha_a/mass"] == 0.08 and flat["probe/linear/image"] == flat["probe/knn/audio"] == 0.1
    assert "localisation/beta_v/n" not in flat and flat["localisation/uniform/auc"] == 0.08  # the raw entries stay
    oracle = {"localisation": {"8x8": {"value": {"auc": 0.79, "ciou@0.5": 1.0, "n": 9}}, "4x4": {"value": {"auc": 0.5}}},
              "classification": {"audio": 1.0, "image": 0.33}}
    add_oracle_per_metric(oracle, metrics, [8, 8])
    flat = flatten(oracle)
    assert flat["localisation/beta_v/auc"] == 0.79 and flat["probe/linear/image"] == 0.33
    assert flat["probe/knn/audio"] == 1.0 and "localisation/beta_v/n" not in flat


@pytest.mark.parametrize("within", [True, False])
def test_remoulded_contrast_with_gathered_negatives_is_the_loop_over_every_process(within):
    """Two processes' batches: rank 1's losses over the gathered embeddings (its rows at offset 3)
    are the brute-force loop's over the union, for rank 1's anchors."""
    torch.manual_seed(2)
    v_all, a_all = torch.randn(6, 5), torch.randn(6, 5)
    l_va, l_av = remoulded_contrast(v_all[3:], a_all[3:], 0.5, within, v_all=v_all, a_all=a_all, offset=3)
    want_va, want_av = brute_remoulded(v_all, a_all, 0.5, within)
    assert l_va.tolist() == pytest.approx(want_va[3:], rel=1e-5) and l_av.tolist() == pytest.approx(want_av[3:], rel=1e-5)
    with pytest.raises(ValueError, match="local pair scores"):
        remoulded_contrast(v_all[3:], a_all[3:], 0.5, within, cross_logits=torch.zeros(3, 3), v_all=v_all)
    gathered_rows = (torch.zeros(6, 6), torch.zeros(6, 6))  # every process's anchors, not this one's
    with pytest.raises(ValueError, match=r"expected \(3, 6\)"):
        remoulded_contrast(v_all[3:], a_all[3:], 0.5, within, gathered_rows, v_all=v_all, a_all=a_all, offset=3)


@pytest.mark.parametrize("options, logits_per_direction", [({}, 15), ({"within_modal_negatives": False}, 8)])
def test_cmac_logs_its_contrast_beside_the_chance_level(options, logits_per_direction):
    """A batch of 8: with within-modal negatives each anchor has 8 + 7 logits, without 8; at chance
    (all logits equal) each direction's cross-entropy is ln(#logits)."""
    from avlab.methods import DataSpec, ModelConfig, create_method
    from avlab.methods.cmac import CMAC
    from avlab.registry import TASKS

    task = TASKS.get("sound-localisation")
    method = create_method("cmac", DataSpec(task.name, dict(task.modalities), 16, 4), ModelConfig(embed_dim=8),
                           CMAC.Config(**options))
    g = torch.Generator().manual_seed(0)
    batch = {"audio": torch.randn(8, 64, 40, generator=g), "image": torch.randn(8, 3, 32, 32, generator=g)}
    _, logs = method.training_step(batch)
    assert float(logs["contrast_chance"]) == pytest.approx(2 * math.log(logits_per_direction))
