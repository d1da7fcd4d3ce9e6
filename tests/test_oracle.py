"""The talking-faces oracle: the exact marginal p(u), the exact LLR, and the refresh of stale oracle.json.

Pure numpy on latents: no media is rendered. The old score (LLR against N(u; 0, I)) is kept here
verbatim as the reference it replaced.
"""
import csv
import json

import numpy as np
import pytest
from scipy.special import logsumexp

from avlab.data.synth import lists as list_writer
from avlab.data.synth.talking_faces import (VOICE_LOADINGS, TalkingFacesConfig, clip_jobs,
                                            sample_identities)
from avlab.eval.metrics import matching_accuracy, verification
from avlab.eval.voiceface import evaluate_lists, list_paths
from avlab.tasks.voiceface import oracle
from avlab.tasks.voiceface.oracle import (AGE_HALF_WIDTH, VoiceFaceModel, llr_score, load_oracle,
                                          log_normal_interval, simulate_matching)

A = VOICE_LOADINGS


# --- references ------------------------------------------------------------------------------------

def old_llr_score(coupling, loadings):
    """The oracle before version 2, verbatim: log p(u | z) − log N(u; 0, I)."""
    mean_w = np.sqrt(coupling) * np.asarray(loadings)
    var = 1.0 - coupling

    def score(u: np.ndarray, z: np.ndarray) -> np.ndarray:
        mean = z @ mean_w.T
        if var < 1e-6:
            return -np.sum((u - mean) ** 2, axis=-1)
        d = u.shape[-1]
        return (-np.sum((u - mean) ** 2, axis=-1) / (2 * var) - 0.5 * d * np.log(var)
                + 0.5 * np.sum(u**2, axis=-1))

    return score


def sample_prior(n, rng):
    """z from the prior exactly as sample_identities draws it (vectorised): gender = [U < ½],
    age ~ U(0, 1), size ~ N(0, 1), then Identity.z's standardisation."""
    gender = (rng.random(n) < 0.5).astype(float)
    age, size = rng.uniform(size=n), rng.normal(size=n)
    return np.stack([2.0 * gender - 1.0, (age - 0.5) / np.sqrt(1 / 12), size], axis=1)


def sample_voices(c, z, rng):
    return np.sqrt(c) * z @ A.T + np.sqrt(1 - c) * rng.normal(size=(len(z), A.shape[0]))


def mc_log_marginal(u, c, z):
    """Brute force: log mean_z N(u; sqrt(c) Ã z, (1−c) I) over prior draws z, and its standard error."""
    lc = VoiceFaceModel(c, A).log_conditional(u[..., None, :], z)  # (..., n)
    w = np.exp(lc - lc.max(axis=-1, keepdims=True))
    se = w.std(axis=-1) / w.mean(axis=-1) / np.sqrt(z.shape[0])  # delta method on the log
    return logsumexp(lc, axis=-1) - np.log(z.shape[0]), se


def gauss_legendre_log_marginal(u, c, n_nodes):
    """log p(u) with s integrated analytically and a by Gauss–Legendre quadrature on [−√3, √3]."""
    x, w = np.polynomial.legendre.leggauss(n_nodes)
    a = AGE_HALF_WIDTH * x
    sigma = (1 - c) * np.eye(5) + c * np.outer(A[:, 2], A[:, 2])
    prec, log_det = np.linalg.inv(sigma), np.linalg.slogdet(sigma)[1]
    parts = []
    for g in (1.0, -1.0):
        r = u[..., None, :] - np.sqrt(c) * (g * A[:, 0] + a[:, None] * A[:, 1])
        log_n = -0.5 * np.einsum("...i,ij,...j->...", r, prec, r) - 0.5 * log_det - 2.5 * np.log(2 * np.pi)
        parts.append(np.log(0.5) + logsumexp(log_n + np.log(w / 2), axis=-1))  # w/2: the uniform density × √3
    return np.logaddexp(*parts)


def latent_arrays(c, n, seed=0):
    ids = sample_identities(TalkingFacesConfig(identities=n, coupling=c, seed=seed))
    return np.array([i.voice_u for i in ids]), np.array([i.z for i in ids])


# --- (1) the exact marginal ------------------------------------------------------------------------

@pytest.mark.parametrize("c", [0.3, 0.8])
def test_log_marginal_equals_monte_carlo_over_the_prior(c):
    rng = np.random.default_rng(1)
    z = sample_prior(1_000_000, rng)
    u = np.stack([np.zeros(5), np.full(5, 1.5), np.array([-2.0, -2.0, 1.0, 0.0, -1.0]),
                  sample_voices(c, sample_prior(1, rng), rng)[0]])
    exact = VoiceFaceModel(c, A).log_marginal(u)
    mc, se = mc_log_marginal(u, c, z)
    assert np.all(np.abs(exact - mc) < 4.5 * se), (exact, mc, se)
    assert np.all(se < 0.01)  # the check has teeth: the old N(0, I) is off by more than this
    assert np.abs(-0.5 * np.sum(u**2, axis=1) - 2.5 * np.log(2 * np.pi) - mc).max() > 0.1


@pytest.mark.parametrize("c", [0.3, 0.8, 0.95, 0.99])
def test_closed_form_matches_converged_gauss_legendre_quadrature(c):
    u = np.random.default_rng(2).normal(size=(40, 5)) * 1.5
    exact = VoiceFaceModel(c, A).log_marginal(u)
    errors = [np.abs(gauss_legendre_log_marginal(u, c, n) - exact).max() for n in (16, 32, 64, 128, 256)]
    assert errors[-1] < 1e-9 and errors[-2] < 1e-8, errors  # converged, to the closed form
    assert errors[0] >= errors[-1] or errors[0] < 1e-12
    # the nodes a fixed rule needs grow as c → 1 (why the implementation integrates a in closed form)
    if c >= 0.95:
        assert errors[0] > 1e-4


def test_log_normal_interval_in_the_tails_and_narrow():
    from scipy.stats import norm

    lo = np.array([-1.0, -3.0, 2.0, 40.0, -41.0, 0.5, 3.0, -8.0])
    hi = np.array([1.0, -2.9, 9.0, 41.0, -40.0, 0.5001, 3.0000001, 8.0])
    far_tail = norm.logsf(40) + np.log1p(-np.exp(norm.logsf(41) - norm.logsf(40)))  # both ways round
    want = np.array([np.log(norm.cdf(1) - norm.cdf(-1)), np.log(norm.cdf(-2.9) - norm.cdf(-3)),
                     np.log(norm.sf(2) - norm.sf(9)), far_tail, far_tail,
                     np.log(hi[5] - lo[5]) + norm.logpdf((lo[5] + hi[5]) / 2),  # narrow: φ(mid)·width
                     np.log(hi[6] - lo[6]) + norm.logpdf((lo[6] + hi[6]) / 2),
                     np.log(norm.cdf(8) - norm.cdf(-8))])
    np.testing.assert_allclose(log_normal_interval(lo, hi), want, rtol=0, atol=1e-9)


# --- (2) it is the density of u --------------------------------------------------------------------

@pytest.mark.parametrize("c", [0.3, 0.8])
def test_log_marginal_is_the_density_of_the_generated_voices(c):
    """Two importance-sampling identities that a wrong p fails: ∫ p = E_q[p/q] = 1 with q wider than
    p, and E_{u ~ generator}[q/p] = 1 with q narrower than p (= ∫ q only if p is u's true density)."""
    rng, n, model = np.random.default_rng(3), 1_000_000, VoiceFaceModel(c, A)

    def log_q(x, cov):
        prec, log_det = np.linalg.inv(cov), np.linalg.slogdet(cov)[1]
        return -0.5 * np.einsum("ni,ij,nj->n", x, prec, x) - 0.5 * log_det - 2.5 * np.log(2 * np.pi)

    wide = 1.5 * (c * A @ A.T + (1 - c) * np.eye(5))  # 1.5 × Cov(u): heavier tails than p
    x = rng.multivariate_normal(np.zeros(5), wide, size=n)
    r = np.exp(model.log_marginal(x) - log_q(x, wide))
    assert abs(r.mean() - 1) < 4 * r.std() / np.sqrt(n), (r.mean(), r.std() / np.sqrt(n))

    narrow = (1 - c) * np.eye(5)  # p is a mixture of normals with covariance ⪰ (1−c) I: q/p has finite variance
    u = sample_voices(c, sample_prior(n, rng), rng)
    log_qu = log_q(u, narrow)
    r = np.exp(log_qu - model.log_marginal(u))
    se = r.std() / np.sqrt(n)
    assert abs(r.mean() - 1) < 4 * se, (r.mean(), se)
    if c == 0.8:  # the old marginal N(0, I) fails the same identity
        r_old = np.exp(log_qu + 0.5 * np.sum(u**2, axis=1) + 2.5 * np.log(2 * np.pi))
        assert abs(r_old.mean() - 1) > 10 * r_old.std() / np.sqrt(n)


# --- (3) the exact LLR is the better verifier, and is the LLR ----------------------------------------

def verification_pairs(c, n=3000, seed=4):
    U, Z = latent_arrays(c, n, seed)
    neg = (np.arange(n) + np.random.default_rng(seed).integers(1, n, size=n)) % n
    labels = np.r_[np.ones(n), np.zeros(n)]
    return np.r_[U, U], np.r_[Z, Z[neg]], labels


@pytest.mark.parametrize("c", [0.3, 0.8])
def test_exact_llr_verifies_at_least_as_well_as_the_old_one(c):
    u, z, labels = verification_pairs(c)
    new = verification(llr_score(c, A)(u, z), labels)
    old = verification(old_llr_score(c, A)(u, z), labels)
    assert new["auc"] >= old["auc"], (new, old)  # Neyman–Pearson: the true LR is the optimal statistic
    assert new["auc"] - old["auc"] > 0.005  # and on these lists the old ceiling was visibly low


def test_exact_llr_equals_a_brute_force_monte_carlo_llr():
    c = 0.8
    u, z, labels = verification_pairs(c, n=3000)
    pick = np.r_[np.arange(100), 3000 + np.arange(100)]
    u, z, labels = u[pick], z[pick], labels[pick]
    prior = sample_prior(50_000, np.random.default_rng(5))
    mc_marginal, se = mc_log_marginal(u, c, prior)
    mc_llr = VoiceFaceModel(c, A).log_conditional(u, z) - mc_marginal
    exact = llr_score(c, A)(u, z)
    assert np.all(np.abs(exact - mc_llr) < 5 * se + 1e-6), np.abs(exact - mc_llr).max()
    assert verification(exact, labels)["auc"] == pytest.approx(verification(mc_llr, labels)["auc"], abs=0.005)


# --- (4) voice→face matching does not depend on p(u) ------------------------------------------------

@pytest.mark.parametrize("c", [0.3, 0.8])
def test_voice_to_face_matching_is_unchanged_and_face_to_voice_is_not(c):
    U, Z = latent_arrays(c, 2000, seed=6)
    rng = np.random.default_rng(6)
    other = (np.arange(len(U)) + rng.integers(1, len(U), size=len(U))) % len(U)
    new, old = llr_score(c, A), old_llr_score(c, A)
    v2f = [matching_accuracy(np.stack([s(U, Z), s(U, Z[other])], axis=1)) for s in (new, old)]
    f2v = [matching_accuracy(np.stack([s(U, Z), s(U[other], Z)], axis=1)) for s in (new, old)]
    assert v2f[0] == v2f[1]
    assert f2v[0] != f2v[1]


# --- (5) coupling 0 and 1 ----------------------------------------------------------------------------

def test_coupling_zero_is_chance_and_coupling_one_separates():
    u, z, labels = verification_pairs(0.0, n=500)
    s = llr_score(0.0, A)(u, z)
    assert np.all(s == 0.0)
    assert verification(s, labels)["auc"] == 0.5
    assert matching_accuracy(np.stack([s[:500], s[500:]], axis=1)) == 0.5
    assert simulate_matching(0.0, n_identities=100, n_trials=500) == 0.5
    # coupling 0: the marginal is the standard normal, exactly
    x = np.random.default_rng(7).normal(size=(10, 5))
    np.testing.assert_allclose(VoiceFaceModel(0.0, A).log_marginal(x), -0.5 * (x**2).sum(1) - 2.5 * np.log(2 * np.pi))
    u, z, labels = verification_pairs(1.0, n=500)
    assert verification(llr_score(1.0, A)(u, z), labels)["auc"] == 1.0
    with pytest.raises(ValueError, match="coupling 1"):
        VoiceFaceModel(1.0, A).log_marginal(u)
    with pytest.raises(ValueError, match="coupling"):
        VoiceFaceModel(1.5, A)


def test_simulate_matching_rises_with_coupling():
    acc = [simulate_matching(c, n_identities=300, n_trials=3000) for c in (0.0, 0.3, 0.6, 0.9)]
    assert acc[0] == pytest.approx(0.5)
    assert all(a < b for a, b in zip(acc, acc[1:])), acc


def test_score_broadcasts_like_the_protocol_calls_it_and_keeps_ties():
    U, Z = latent_arrays(0.8, 40, seed=8)
    score = llr_score(0.8, A)
    pairwise = np.array([[score(U[i], Z[j]) for j in range(10)] for i in range(8)])
    np.testing.assert_allclose(score(U[:8, None], Z[None, :10]), pairwise, rtol=1e-12)
    np.testing.assert_allclose(score(U[None, :8], Z[:10, None]), pairwise.T, rtol=1e-12)  # faces probing voices
    # identical vectors anywhere in a batch score identically (ties survive, as with distinct_rows)
    rows = np.concatenate([U[:3], U[5:9], U[:3]])[:, None]
    s = score(rows, Z[None, :6])
    assert np.array_equal(s[:3], s[-3:])


# --- oracle.json: versioned, refreshed when stale ----------------------------------------------------

@pytest.fixture
def latent_set(tmp_path):
    """A talking-faces set without media: meta.csv, latents/identities.json and lists/, as generate writes them."""
    cfg = TalkingFacesConfig(identities=60, videos_per_id=2, utts_per_video=2, coupling=0.8, seed=9)
    ids = sample_identities(cfg)
    rows = [{"path": j.relpath, "identity": j.identity.name, "clip_split": j.clip_split,
             "gender": "m" if j.identity.gender else "f"} for j in clip_jobs(cfg, ids)]
    with open(tmp_path / "meta.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (tmp_path / "latents").mkdir()
    (tmp_path / "latents" / "identities.json").write_text(json.dumps({
        "voice_loadings": VOICE_LOADINGS.round(6).tolist(), "coupling": cfg.coupling,
        "identities": [{"name": i.name, "z": i.z.round(6).tolist(), "voice_u": list(i.voice_u)} for i in ids]}))
    list_writer.write_all(tmp_path, rows, ids, cfg)
    return tmp_path


def old_oracle_metrics(root):
    lat = json.loads((root / "latents" / "identities.json").read_text())
    by_name = {i["name"]: i for i in lat["identities"]}
    with open(root / "meta.csv", newline="") as f:
        ident_of = {r["path"]: r["identity"] for r in csv.DictReader(f)}
    voices, faces = list_paths(root / "lists")
    return evaluate_lists(root / "lists", {p: np.array(by_name[ident_of[p]]["voice_u"]) for p in voices},
                          {p: np.array(by_name[ident_of[p]]["z"]) for p in faces},
                          old_llr_score(lat["coupling"], np.array(lat["voice_loadings"])))


def test_a_stale_oracle_json_is_rescored_and_rewritten_once(latent_set, monkeypatch):
    old = old_oracle_metrics(latent_set)
    (latent_set / "oracle.json").write_text(json.dumps(old, indent=1, sort_keys=True))  # as version 1 left it
    fresh = load_oracle(latent_set)
    assert fresh == oracle.oracle_metrics(latent_set) != old
    assert json.loads((latent_set / "oracle.json").read_text()) == fresh
    stamp = json.loads((latent_set / "oracle_version.json").read_text())
    assert stamp["oracle_version"] == oracle.ORACLE_VERSION == 2
    # same shape as before: splits at the top, no extra keys for readers that walk it
    assert set(fresh) == set(old) and all(set(fresh[s]) == set(old[s]) for s in old)
    # p(u) cancels where one voice meets several faces; verification and face→voice move up
    for split in old:
        assert fresh[split]["matching_1to2"]["v2f"] == old[split]["matching_1to2"]["v2f"]
        assert fresh[split]["matching_1toN"]["v2f"] == old[split]["matching_1toN"]["v2f"]
        assert fresh[split]["retrieval_map"]["v2f"] == pytest.approx(old[split]["retrieval_map"]["v2f"], abs=1e-12)
    assert fresh["seen_heard"]["verification"]["U"]["auc"] != old["seen_heard"]["verification"]["U"]["auc"]
    # current: read, not re-scored
    monkeypatch.setattr(oracle, "oracle_metrics", lambda root: pytest.fail("re-scored a current oracle.json"))
    assert load_oracle(latent_set) == fresh


def test_an_old_stamp_or_an_oracle_json_it_does_not_match_is_rescored(latent_set):
    fresh = oracle.write_oracle(latent_set)
    stamp_path = latent_set / "oracle_version.json"
    stamp = json.loads(stamp_path.read_text())
    stamp_path.write_text(json.dumps({**stamp, "oracle_version": 1}))
    assert not oracle.oracle_is_current(latent_set)
    assert load_oracle(latent_set) == fresh and oracle.oracle_is_current(latent_set)
    # an older oracle.json copied over a current set (prepare_shards copies oracle.json, not the stamp)
    (latent_set / "oracle.json").write_text(json.dumps(old_oracle_metrics(latent_set), indent=1, sort_keys=True))
    assert not oracle.oracle_is_current(latent_set)
    assert load_oracle(latent_set) == fresh


def test_without_latents_or_write_access_the_loader_still_answers(latent_set, tmp_path_factory, monkeypatch):
    other = tmp_path_factory.mktemp("not-talking-faces")
    (other / "oracle.json").write_text(json.dumps({"test": {"accuracy": 0.5}}))
    assert load_oracle(other) == {"test": {"accuracy": 0.5}}
    assert not (other / "oracle_version.json").exists()

    def refuse(path, text):
        raise PermissionError(f"read-only: {path}")

    monkeypatch.setattr(oracle, "_write_atomic", refuse)
    with pytest.warns(UserWarning, match="could not rewrite"):
        assert load_oracle(latent_set) == oracle.oracle_metrics(latent_set)


def test_the_data_tour_reads_the_refreshed_oracle(latent_set):
    from avlab.viz.data_tour import oracle_table

    (latent_set / "oracle.json").write_text(json.dumps(old_oracle_metrics(latent_set)))
    table = oracle_table(latent_set)
    assert set(table.split) == {"seen_heard", "unseen_unheard"}
    auc = table[(table.split == "unseen_unheard") & (table.metric == "verification/U/auc")].oracle.item()
    assert auc == oracle.oracle_metrics(latent_set)["unseen_unheard"]["verification"]["U"]["auc"]
