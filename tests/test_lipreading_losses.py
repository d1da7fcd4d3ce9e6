"""ADC-SSL's losses against brute-force loops and hand-worked cases: short-term NCE over time
windows, gradient reversal (exact reversal and scaling), the λ ramp and its momentum."""
import math

import pytest
import torch
import torch.nn.functional as F

from avlab.losses.grl import grad_reverse, momentum_lambda, ramp
from avlab.losses.infonce import cross_modal_info_nce
from avlab.losses.nce import short_term_nce, windows


def _brute_short(v, a, t, negatives):
    b, w, _ = v.shape
    out = torch.zeros(b, w)
    for i in range(b):
        for s in range(w):
            allowed = [(j, u) for j in range(b) for u in range(w)
                       if (j, u) == (i, s) or negatives == "all" or (negatives == "same_clip") == (j == i)]
            sims = {(j, u): float(F.cosine_similarity(v[i, s], a[j, u], dim=0)) / t for j, u in allowed}
            out[i, s] = -sims[(i, s)] + math.log(sum(math.exp(x) for x in sims.values()))
    return out


@pytest.mark.parametrize("negatives", ["all", "same_clip", "other_clips"])
def test_short_term_nce_equals_a_brute_force_loop(negatives):
    torch.manual_seed(0)
    v, a = torch.randn(3, 4, 6), torch.randn(3, 4, 6)
    got = short_term_nce(v, a, 0.2, negatives)
    assert got.shape == (3, 4)
    torch.testing.assert_close(got, _brute_short(v, a, 0.2, negatives), rtol=1e-5, atol=1e-5)


def test_short_term_nce_hand_case_and_bad_option():
    # Two clips, one window each, orthogonal unit vectors, τ = 1: each anchor's positive has cosine 1
    # and its one negative (the other clip) cosine 0 → loss log(1 + e^{−1}); with only same-clip
    # negatives there are none → 0.
    x = torch.eye(2).view(2, 1, 2)
    assert short_term_nce(x, x, 1.0, "all").flatten().tolist() == pytest.approx([math.log(1 + math.exp(-1))] * 2)
    assert short_term_nce(x, x, 1.0, "same_clip").abs().max() < 1e-6
    with pytest.raises(ValueError, match="negatives"):
        short_term_nce(x, x, 1.0, "nearby")


def test_windows_average_frames_and_refuse_short_clips():
    f = torch.arange(12.0).view(1, 12, 1)
    assert windows(f, 5, 5).flatten().tolist() == [2.0, 7.0]  # frames 0-4 and 5-9; 10-11 left over
    assert windows(f, 5, 1).shape == (1, 8, 1)
    with pytest.raises(ValueError, match="shorter than the 5-frame window"):
        windows(f[:, :4], 5, 5)


def test_long_term_contrast_is_symmetric_infonce_across_clips():
    torch.manual_seed(1)
    v, a = torch.randn(5, 8), torch.randn(5, 8)
    l_va, l_av = cross_modal_info_nce(v, a, 0.07)
    logits = F.normalize(v, dim=1) @ F.normalize(a, dim=1).T / 0.07
    torch.testing.assert_close(l_va, -torch.diagonal(logits.log_softmax(1)))
    torch.testing.assert_close(l_av, -torch.diagonal(logits.T.log_softmax(1)))


@pytest.mark.parametrize("lam", [0.0, 0.3, 1.0, 2.5])
def test_grl_is_identity_forward_and_reverses_and_scales_the_gradient_exactly(lam):
    torch.manual_seed(2)
    x = torch.randn(4, 3, requires_grad=True)
    w = torch.randn(4, 3)
    y = grad_reverse(x, lam)
    assert torch.equal(y, x)
    (y * w).sum().backward()
    assert torch.equal(x.grad, -lam * w)
    # A head above the GRL learns normally: its gradient is untouched.
    head = torch.randn(3, requires_grad=True)
    x2 = torch.randn(4, 3, requires_grad=True)
    (grad_reverse(x2, torch.tensor(lam)) @ head).sum().backward()
    torch.testing.assert_close(head.grad, x2.detach().sum(0))
    torch.testing.assert_close(x2.grad, -lam * head.detach().expand(4, 3))


def test_lambda_ramp_hand_values():
    assert float(ramp(0.0)) == 0.0
    assert float(ramp(0.5)) == pytest.approx(2 / (1 + math.exp(-5)) - 1)  # 0.98661
    assert float(ramp(0.1)) == pytest.approx(2 / (1 + math.exp(-1)) - 1)  # 0.46212
    assert float(ramp(1.0)) == pytest.approx(1.0, abs=1e-4)
    ps = torch.linspace(0, 1, 11)
    assert (ramp(ps).diff() > 0).all()


def test_momentum_lambda_is_the_ema_of_the_ramp():
    lam, expected, m = torch.zeros(()), 0.0, 0.9
    for step in range(30):
        p = step / 20
        lam = momentum_lambda(lam, p, m)
        expected = m * expected + (1 - m) * (2 / (1 + math.exp(-10 * p)) - 1)
        assert float(lam) == pytest.approx(expected, rel=1e-6)
    assert float(momentum_lambda(torch.tensor(0.4), 0.3, 0.0)) == pytest.approx(float(ramp(0.3)))  # m = 0: plain
