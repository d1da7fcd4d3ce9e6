"""Evaluation at scale: chunked scoring equals the old broadcasting protocol; chance; bootstrap.

The reference for the protocol is a verbatim copy of the implementation before chunking (an
(n_query, n_gallery, d) broadcast and a per-query sklearn loop), kept here on purpose.
"""
import itertools
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from avlab.eval import similarity
from avlab.eval.bootstrap import bootstrap_parts, confidence_intervals, identity_counts, percentile_interval
from avlab.eval.chance import chance_metrics, expected_random_ap, permuted_identities, random_ranking_map
from avlab.eval.metrics import average_precision, matching_accuracy, matching_curve, retrieval_map, verification
from avlab.eval.similarity import distinct_rows, score_blocks
from avlab.eval.voiceface import (SPLIT_TAGS, Part, cosine, evaluate_lists, list_identities, point_estimates,
                                  read_matching, read_retrieval, read_verification, scored_parts)


# --- the old implementation, kept as the reference ------------------------------------------------

def old_cosine(a, b):
    a = a / (np.linalg.norm(a, axis=-1, keepdims=True) + 1e-12)
    b = b / (np.linalg.norm(b, axis=-1, keepdims=True) + 1e-12)
    return (a * b).sum(-1)


def old_retrieval_map(query_labels, gallery_labels, scores):
    q, g, s = np.asarray(query_labels), np.asarray(gallery_labels), np.asarray(scores, float)
    aps = [average_precision_score(g == q[i], s[i]) for i in range(len(q)) if (g == q[i]).any()]
    return float(np.mean(aps))


def old_lookup(emb, paths):
    return np.stack([np.asarray(emb[p]) for p in paths])


def old_evaluate_lists(lists_dir, voice_emb, face_emb, score=old_cosine):
    results = {}
    for split, tag in SPLIT_TAGS.items():
        res = {}
        for kind, key in (("random", "U"), ("G", "G")):
            p = lists_dir / f"veriflist_test_{kind}_{tag}.txt"
            if p.exists():
                rows = read_verification(p)
                s = score(old_lookup(voice_emb, [r[0] for r in rows]), old_lookup(face_emb, [r[1] for r in rows]))
                res.setdefault("verification", {})[key] = verification(s, [r[2] for r in rows])
        for direction in ("v2f", "f2v"):
            probe_emb, cand_emb = (voice_emb, face_emb) if direction == "v2f" else (face_emb, voice_emb)
            for key in ("U", "G", "N10"):
                p = lists_dir / f"matching_{direction}_{key}_{tag}.csv"
                if not p.exists():
                    continue
                rows = read_matching(p)
                probes = old_lookup(probe_emb, [r[0] for r in rows])
                cands = np.stack([old_lookup(cand_emb, r[1:]) for r in rows])
                s = score(probes[:, None, :], cands) if direction == "v2f" else score(cands, probes[:, None, :])
                if key == "N10":
                    res.setdefault("matching_1toN", {})[direction] = {str(n): a for n, a in matching_curve(s).items()}
                else:
                    res.setdefault("matching_1to2", {}).setdefault(direction, {})[key] = matching_accuracy(s)
        wav, jpg = lists_dir / f"retrieval_wav_{tag}.csv", lists_dir / f"retrieval_jpg_{tag}.csv"
        if wav.exists() and jpg.exists():
            v_rows, f_rows = read_retrieval(wav), read_retrieval(jpg)
            V, F = old_lookup(voice_emb, [r[0] for r in v_rows]), old_lookup(face_emb, [r[0] for r in f_rows])
            v_id, f_id = [r[1] for r in v_rows], [r[1] for r in f_rows]
            sim = score(V[:, None, :], F[None, :, :])
            res["retrieval_map"] = {"v2f": old_retrieval_map(v_id, f_id, sim),
                                    "f2v": old_retrieval_map(f_id, v_id, sim.T)}
        if res:
            results[split] = res
    return results


# --- list files in the public shapes, written by hand ---------------------------------------------

def write_lists(folder: Path, n_ids: int = 8, per_id: int = 4, n_probes: int = 30, seed: int = 0) -> dict[str, str]:
    """Both splits' lists over clips ``idNN/TAG/k.mp4``; returns path → identity.

    The face gallery drops every fifth clip, so v2f and f2v have different shapes.
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    identity = {}
    for tag in SPLIT_TAGS.values():
        by_id = {f"id{i:02d}": [f"id{i:02d}/{tag}/{k}.mp4" for k in range(per_id)] for i in range(n_ids)}
        paths = [p for clips in by_id.values() for p in clips]
        identity.update({p: i for i, clips in by_id.items() for p in clips})

        def clip_of(ident, not_path=None):
            options = [p for p in by_id[ident] if p != not_path]
            return options[rng.integers(len(options))]

        def negatives(ident, n):
            others = [i for i in by_id if i != ident]
            return [clip_of(others[k]) for k in rng.choice(len(others), n, replace=False)]

        probes = [paths[k] for k in rng.choice(len(paths), n_probes, replace=False)]
        for kind in ("random", "G"):
            lines = ["id,voice-speaker-id,face-speaker-id,label,voice-path,face-path"] if kind == "G" else []
            for n, p in enumerate(probes):
                neg = negatives(identity[p], 1)[0]
                lines += [f"{2 * n},{identity[p]},{identity[p]},1,{p},{clip_of(identity[p], p)}",
                          f"{2 * n + 1},{identity[p]},{identity[neg]},0,{p},{neg}"]
            (folder / f"veriflist_test_{kind}_{tag}.txt").write_text("\n".join(lines) + "\n")
        n_neg_of = (("U", 1), ("G", 1), ("N10", min(7, n_ids - 1)))
        for direction, (key, n_neg) in itertools.product(("v2f", "f2v"), n_neg_of):
            rows = [" ".join([p, clip_of(identity[p], p), *negatives(identity[p], n_neg)]) for p in probes]
            (folder / f"matching_{direction}_{key}_{tag}.csv").write_text("\n".join(rows) + "\n")
        for modality, gallery in (("wav", paths), ("jpg", [p for k, p in enumerate(paths) if k % 5])):
            text = "path,identity\n" + "".join(f"{p},{identity[p]}\n" for p in gallery)
            (folder / f"retrieval_{modality}_{tag}.csv").write_text(text)
    return identity


def embeddings(identity: dict[str, str], dim: int = 8, signal: float = 1.0, seed: int = 0, dtype=np.float64,
               face_dim: int | None = None):
    """Voice and face vectors around a per-identity centre (face vectors may live in another space)."""
    rng = np.random.default_rng(seed)
    ids = sorted(set(identity.values()))
    centre = dict(zip(ids, rng.normal(size=(len(ids), dim))))
    mix = rng.normal(size=(dim, face_dim)) if face_dim else np.eye(dim)
    voice = {p: (signal * centre[i] + rng.normal(size=dim)).astype(dtype) for p, i in sorted(identity.items())}
    face = {p: ((signal * centre[i] + rng.normal(size=dim)) @ mix).astype(dtype) for p, i in sorted(identity.items())}
    return voice, face


def leaves(tree, prefix=()):
    for k, v in tree.items():
        yield from leaves(v, (*prefix, k)) if isinstance(v, dict) else [((*prefix, k), v)]


def assert_trees_close(actual, expected, atol=1e-6):
    a, e = dict(leaves(actual)), dict(leaves(expected))
    assert a.keys() == e.keys()
    for k in e:
        np.testing.assert_allclose(a[k], e[k], atol=atol, err_msg=str(k))


def llr_like(coupling: float, loadings: np.ndarray):
    """An asymmetric broadcasting score of a voice u and a face z, in the form of the oracle's
    log-likelihood ratio (a matrix product inside, voice and face of different sizes)."""
    mean_w, var = np.sqrt(coupling) * loadings, 1.0 - coupling

    def score(u, z):
        mean = z @ mean_w.T
        d = u.shape[-1]
        return -np.sum((u - mean) ** 2, axis=-1) / (2 * var) - 0.5 * d * np.log(var) + 0.5 * np.sum(u**2, axis=-1)

    return score


@pytest.fixture(scope="module")
def lists(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lists")
    return folder, write_lists(folder)


# --- chunked protocol == old protocol -------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("signal", [0.0, 1.5])
def test_evaluate_lists_equals_old_implementation(lists, dtype, signal):
    folder, identity = lists
    voice, face = embeddings(identity, signal=signal, dtype=dtype)
    assert_trees_close(evaluate_lists(folder, voice, face), old_evaluate_lists(folder, voice, face))


@pytest.mark.parametrize("budget", [1, 37, 500])
def test_tiny_blocks_and_an_asymmetric_score_equal_old(lists, monkeypatch, budget):
    """Blocks of a few scores (and column tiles for the broadcasting score) change nothing."""
    folder, identity = lists
    monkeypatch.setattr(similarity, "CHUNK_ELEMENTS", budget)
    voice, face = embeddings(identity, dim=6, face_dim=3, signal=1.0, seed=1)
    llr = llr_like(0.6, np.random.default_rng(2).normal(size=(6, 3)) / 2)
    assert_trees_close(evaluate_lists(folder, voice, face, llr), old_evaluate_lists(folder, voice, face, llr))
    voice, face = embeddings(identity, signal=1.0, seed=1)
    assert_trees_close(evaluate_lists(folder, voice, face), old_evaluate_lists(folder, voice, face))


def test_broadcasting_score_sees_at_most_a_budget_of_elements():
    rng = np.random.default_rng(0)
    Q, G = rng.normal(size=(13, 8)), rng.normal(size=(50, 8))
    seen = []

    def recording(a, b):
        seen.append(np.broadcast(a, b).size)
        return old_cosine(a, b)

    blocks = list(score_blocks(Q, G, recording, budget=200))
    assert max(seen) <= 200 and sum(len(b) for b in blocks) == 13
    np.testing.assert_allclose(np.concatenate(blocks), old_cosine(Q[:, None], G[None]), atol=1e-12)
    voice_minus_face = lambda v, f: v.sum(-1) - f.sum(-1)  # noqa: E731  (not symmetric)
    swapped = np.concatenate(list(score_blocks(G, Q, voice_minus_face, swap=True, budget=64)))
    np.testing.assert_allclose(swapped, Q.sum(1)[None, :] - G.sum(1)[:, None], atol=1e-12)


@pytest.mark.parametrize("generic", [False, True])
def test_equal_vectors_get_exactly_equal_scores(generic):
    """A gallery that repeats vectors (the oracle's identity-level embeddings) must keep exact ties."""
    rng = np.random.default_rng(1)
    base = rng.normal(size=(7, 97)).astype(np.float32)
    codes = rng.integers(0, 7, 301)
    Q, G = rng.normal(size=(40, 97)).astype(np.float32), base[codes]
    score = (lambda a, b: old_cosine(a, b) + 0.0) if generic else cosine
    S = np.concatenate(list(score_blocks(Q, G, score, budget=5000)))
    for k in range(7):
        cols = S[:, codes == k]
        assert (cols == cols[:, :1]).all()
    unique, inverse = distinct_rows(G)
    assert len(unique) == len(set(codes)) and (unique[inverse] == G).all()
    assert distinct_rows(Q)[1] is None


def test_retrieval_with_repeated_vectors_equals_sklearn_on_grouped_ties(tmp_path):
    """Oracle-style embeddings (one vector per identity): mAP equals sklearn with the ties grouped."""
    identity = write_lists(tmp_path, n_ids=6, per_id=5)
    rng = np.random.default_rng(3)
    centre = {i: rng.normal(size=16) for i in sorted(set(identity.values()))}
    voice = {p: centre[i] + 0.8 * rng.normal(size=16) for p, i in identity.items()}
    face = {p: centre[i].copy() for p, i in identity.items()}
    got = evaluate_lists(tmp_path, voice, face)
    for split, tag in SPLIT_TAGS.items():
        v, f = (read_retrieval(tmp_path / f"retrieval_{m}_{tag}.csv") for m in ("wav", "jpg"))
        sim = old_cosine(np.stack([voice[p] for p, _ in v])[:, None], np.stack([face[p] for p, _ in f])[None])
        sim = np.round(sim, 9)  # merge last-bit differences: equal vectors are one tied group
        expected = old_retrieval_map([i for _, i in v], [i for _, i in f], sim)
        assert got[split]["retrieval_map"]["v2f"] == pytest.approx(expected, abs=1e-9)


# --- chance ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("n, r", [(1, 1), (2, 1), (5, 2), (8, 3), (9, 9)])
def test_expected_random_ap_by_exhaustive_enumeration(n, r):
    """Every placement of the R relevant items among N positions is equally likely: average exactly."""
    aps = []
    for positions in itertools.combinations(range(1, n + 1), r):
        aps.append(np.mean([(k + 1) / p for k, p in enumerate(positions)]))
    assert float(expected_random_ap(r, n)) == pytest.approx(np.mean(aps), abs=1e-12)


def test_expected_random_ap_against_monte_carlo():
    rng = np.random.default_rng(0)
    n, r, draws = 40, 6, 20000
    relevant = np.zeros((draws, n), bool)
    relevant[:, :r] = True
    aps = average_precision(rng.random((draws, n)), relevant)
    assert abs(aps.mean() - float(expected_random_ap(r, n))) < 4 * aps.std() / np.sqrt(draws)


def test_random_ranking_map_against_monte_carlo_rankings():
    """Queries with different numbers of relevant items (and some with none), random score matrices."""
    rng = np.random.default_rng(1)
    q, g = rng.integers(0, 7, 30), rng.integers(0, 9, 25)
    maps = [retrieval_map(q, g, rng.random((30, 25))) for _ in range(400)]
    assert abs(np.mean(maps) - random_ranking_map(q, g)) < 4 * np.std(maps) / np.sqrt(400)


def test_random_ranking_map_averages_queries_with_a_relevant_item():
    q, g = ["a", "b", "z"], ["a", "a", "b", "c"]
    assert random_ranking_map(q, g) == pytest.approx((expected_random_ap(2, 4) + expected_random_ap(1, 4)) / 2)


def test_chance_metrics_mirror_the_protocol_tree(lists):
    folder, identity = lists
    voice, face = embeddings(identity, signal=2.0)
    measured, chance = evaluate_lists(folder, voice, face), chance_metrics(folder)
    assert set(dict(leaves(chance))) == set(dict(leaves(measured)))
    split = chance["unseen_unheard"]
    assert split["verification"]["U"] == {"auc": 0.5, "eer": 0.5}
    assert split["matching_1to2"]["f2v"]["G"] == 0.5
    assert split["matching_1toN"]["v2f"] == {str(n): 1 / n for n in range(2, 9)}
    v, f = (read_retrieval(folder / f"retrieval_{m}_unseenunheard.csv") for m in ("wav", "jpg"))
    assert split["retrieval_map"]["f2v"] == pytest.approx(random_ranking_map([i for _, i in f], [i for _, i in v]))


def test_identity_permutation_null(lists):
    """Real scores against a relabelled gallery: equals the old mAP on the relabelled identities."""
    folder, identity = lists
    voice, face = embeddings(identity, signal=3.0)
    null = chance_metrics(folder, voice, face, seed=4, n_perm=1)
    assert null == chance_metrics(folder, voice, face, seed=4, n_perm=1)
    assert null != chance_metrics(folder, voice, face, seed=5, n_perm=1)
    rng = np.random.default_rng([4, list(SPLIT_TAGS).index("seen_heard")])
    v, f = (read_retrieval(folder / f"retrieval_{m}_seenheard.csv") for m in ("wav", "jpg"))
    relabelled = permuted_identities([i for _, i in f], 1, rng)[0]
    sim = old_cosine(np.stack([voice[p] for p, _ in v])[:, None], np.stack([face[p] for p, _ in f])[None])
    got = null["seen_heard"]["retrieval_map_null"]["v2f"]
    assert got == pytest.approx(old_retrieval_map([i for _, i in v], relabelled, sim), abs=1e-9)
    real = evaluate_lists(folder, voice, face)["seen_heard"]["retrieval_map"]["v2f"]
    assert real > 0.9 > got  # structure is kept, but it answers the wrong queries


def test_permuted_identities_keep_clusters_and_follow_the_seed():
    labels = np.array(["b", "a", "c", "a", "b", "b"])
    out = permuted_identities(labels, 50, np.random.default_rng(0))
    for row in out:
        renamed = dict(zip(labels, row))
        assert all(renamed[x] == y for x, y in zip(labels, row))  # one new name per identity: clusters intact
        assert sorted(renamed.values()) == ["a", "b", "c"]  # a bijection of the identities
    assert len({tuple(r) for r in out}) == 6  # all 3! relabellings occur
    np.testing.assert_array_equal(out, permuted_identities(labels, 50, np.random.default_rng(0)))


def test_chance_and_bootstrap_do_not_depend_on_string_hashing(lists, tmp_path):
    folder, _ = lists
    code = ("import json, sys; from pathlib import Path; from tests.test_eval_scale import embeddings; "
            "from avlab.eval.voiceface import list_identities; from avlab.eval.chance import chance_metrics; "
            "from avlab.eval.bootstrap import confidence_intervals; d = Path(sys.argv[1]); "
            "v, f = embeddings(list_identities(d), signal=1.0); "
            "out = [chance_metrics(d, v, f, seed=1), confidence_intervals(d, v, f, n_boot=20)]; "
            "print(json.dumps(out, sort_keys=True))")
    outs = {subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": h}, cwd=Path(__file__).parents[1]).stdout
            for h in ("1", "2")}
    assert len(outs) == 1


# --- bootstrap ------------------------------------------------------------------------------------

def test_perfect_scorer_has_degenerate_intervals(lists):
    folder, identity = lists
    ids = sorted(set(identity.values()))
    onehot = {p: np.eye(len(ids))[ids.index(i)] for p, i in identity.items()}
    ci = confidence_intervals(folder, onehot, onehot, n_boot=30)
    for keys, (lo, hi) in ((k, v) for k, v in _interval_leaves(ci)):
        expected = 0.0 if keys[-1] == "eer" else 1.0
        assert lo == hi == expected, keys


def _interval_leaves(tree, prefix=()):
    for k, v in tree.items():
        yield from _interval_leaves(v, (*prefix, k)) if isinstance(v, dict) else [((*prefix, k), v)]


def test_intervals_mirror_the_tree_and_contain_the_estimate(lists):
    folder, identity = lists
    voice, face = embeddings(identity, signal=0.7, seed=5)
    point = dict(leaves(evaluate_lists(folder, voice, face)))
    ci = dict(_interval_leaves(confidence_intervals(folder, voice, face, identity=identity.get, n_boot=200, seed=3)))
    assert ci.keys() == point.keys()
    inside = [ci[k][0] <= point[k] <= ci[k][1] for k in point]
    assert all(lo <= hi for lo, hi in ci.values())
    assert np.mean(inside) > 0.9  # a percentile interval may just miss a skewed estimate, rarely
    assert ci == dict(_interval_leaves(confidence_intervals(folder, voice, face, n_boot=200, seed=3)))


def test_intervals_shrink_with_more_identities(tmp_path):
    widths = []
    for n_ids in (6, 60):
        folder = tmp_path / str(n_ids)
        identity = write_lists(folder, n_ids=n_ids, per_id=3, n_probes=3 * n_ids)
        voice, face = embeddings(identity, signal=0.8, seed=n_ids)
        ci = confidence_intervals(folder, voice, face, n_boot=100)["unseen_unheard"]
        widths.append([np.diff(ci["verification"]["U"]["auc"])[0], np.diff(ci["retrieval_map"]["v2f"])[0],
                       np.diff(ci["matching_1to2"]["v2f"]["U"])[0]])
    assert (np.array(widths[1]) < np.array(widths[0])).all(), widths


def test_resampling_keeps_every_row_of_each_drawn_identity_with_multiplicity():
    """By hand: draw identities, concatenate their rows once per draw, take the mean; same percentiles."""
    values = np.array([0.0, 1.0, 1.0, 5.0, 2.0, 7.0])
    probes = ["p0", "p1", "p2", "p3", "p4", "p5"]
    who = {"p0": "x", "p1": "x", "p2": "y", "p3": "z", "p4": "z", "p5": "y"}
    part = Part("unseen_unheard", ("m",), probes, lambda idx: float(values[idx].mean()))
    got = bootstrap_parts([part], who, n_boot=300, seed=9, level=0.8)["unseen_unheard"]["m"]
    rng = np.random.default_rng([9, list(SPLIT_TAGS).index("unseen_unheard")])
    ids = ["x", "y", "z"]
    rows_of = defaultdict(list)
    for k, p in enumerate(probes):
        rows_of[who[p]].append(k)
    reps = [values[[r for d in draw for r in rows_of[ids[d]]]].mean() for draw in rng.integers(3, size=(300, 3))]
    np.testing.assert_allclose(got, np.percentile(reps, [10, 90]))
    counts = identity_counts(3, 300, np.random.default_rng(0))
    assert counts.shape == (300, 3) and (counts.sum(1) == 3).all()


def test_undefined_resamples_are_left_out():
    assert percentile_interval([None, None]) == [pytest.approx(np.nan, nan_ok=True)] * 2
    scores, labels = np.array([0.3, 0.1]), np.array([1, 0])
    part = Part("seen_heard", ("verification", "U"), ["a", "b"], lambda idx: verification(scores[idx], labels[idx]))
    ci = bootstrap_parts([part], {"a": "A", "b": "B"}, n_boot=50)["seen_heard"]["verification"]["U"]
    assert ci == {"auc": [1.0, 1.0], "eer": [0.0, 0.0]}  # resamples with one class only are skipped


def test_default_identities_come_from_the_lists(lists):
    folder, identity = lists
    assert list_identities(folder) == identity
    voice, face = embeddings(identity)
    parts = list(scored_parts(folder, voice, face))
    assert {p.keys[0] for p in parts} == {"verification", "matching_1to2", "matching_1toN", "retrieval_map"}
    # Score once, report both: the same figures as the one-call functions.
    assert point_estimates(parts) == evaluate_lists(folder, voice, face)
    assert bootstrap_parts(parts, identity, n_boot=20) == confidence_intervals(folder, voice, face, n_boot=20)
