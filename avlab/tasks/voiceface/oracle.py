"""The ceiling for talking-faces: the Bayes-optimal matcher given perfect perception.

It sees each face's shared latents z (the face shows them) and each voice's standardised vector
u, and scores a pair by the log-likelihood ratio of "same identity" under the generator:
``u | z ~ N(sqrt(c)·Ã z, (1−c)·I)`` against the marginal ``u ~ N(0, I)``. What it cannot know is
the private voice factor ε — the generator's own noise — so at coupling 0 it is at chance and it
rises with coupling. Every number comes out of the same protocol code as learned models.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from avlab.eval.voiceface import evaluate_lists, list_paths


def llr_score(coupling: float, loadings: np.ndarray):
    """A broadcasting score(u, z) = log p(u | z) − log p(u) under the generator.

    >>> s = llr_score(0.0, np.eye(5, 3))
    >>> float(s(np.ones(5), np.zeros(3))) == float(s(np.ones(5), np.ones(3)))  # c = 0: uninformative
    True
    """
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


def oracle_metrics(root: str | Path) -> dict:
    root = Path(root)
    lat = json.loads((root / "latents" / "identities.json").read_text())
    by_name = {i["name"]: i for i in lat["identities"]}
    with open(root / "meta.csv", newline="") as f:
        ident_of = {r["path"]: r["identity"] for r in csv.DictReader(f)}
    voices, faces = list_paths(root / "lists")
    voice_emb = {p: np.array(by_name[ident_of[p]]["voice_u"]) for p in voices}
    face_emb = {p: np.array(by_name[ident_of[p]]["z"]) for p in faces}
    score = llr_score(lat["coupling"], np.array(lat["voice_loadings"]))
    return evaluate_lists(root / "lists", voice_emb, face_emb, score)


def write_oracle(root: str | Path) -> dict:
    metrics = oracle_metrics(root)
    Path(root, "oracle.json").write_text(json.dumps(metrics, indent=1, sort_keys=True))
    return metrics


def simulate_matching(coupling: float, n_identities: int = 400, n_trials: int = 4000, seed: int = 0) -> float:
    """Oracle V→F 1:2 accuracy on freshly sampled identities, without rendering any media.

    The same latents, score and metric as :func:`oracle_metrics`, so a study of coupling (how much
    of the voice the face predicts) costs milliseconds.
    """
    from avlab.data.synth.talking_faces import VOICE_LOADINGS, TalkingFacesConfig, sample_identities
    from avlab.eval.metrics import matching_accuracy

    ids = sample_identities(TalkingFacesConfig(identities=n_identities, coupling=coupling, seed=seed))
    U = np.array([i.voice_u for i in ids])
    Z = np.array([i.z for i in ids])
    rng = np.random.default_rng(seed)
    probe = rng.integers(n_identities, size=n_trials)
    other = (probe + rng.integers(1, n_identities, size=n_trials)) % n_identities
    score = llr_score(coupling, VOICE_LOADINGS)
    s = np.stack([score(U[probe], Z[probe]), score(U[probe], Z[other])], axis=1)
    return matching_accuracy(s)
