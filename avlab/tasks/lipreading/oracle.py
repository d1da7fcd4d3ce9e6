"""Ceilings for lip-words: the Bayes word accuracy of an ideal observer of the generator's latents.

* **visual**: an observer who reads every viseme of the clip perfectly (but, like any lip reader,
  sees nothing inside the viseme classes) decides the word by its posterior given the viseme
  sequence. Homophenes share that sequence, so the accuracy is Σ_v max_w n(w, v) / N over the
  test clips — with equal clips per word, (number of viseme classes) / (number of words). Timing
  (a word's duration) is not part of this observation; it varies with the speaker's rate far more
  than between homophenes, so what it could add is small (a documented approximation).
* **audio**: the same from the phoneme sequence — 1.0 unless two words are homophones.
* **speaker**: the chance level of speaker identification on the test clips (1 / speakers, and the
  majority-speaker share), the reference for identity leakage.

Computed from ``meta.csv`` (each clip's spoken phonemes and visemes), so it is the oracle of the
clips as generated; :func:`simulate_visual_accuracy` checks it by sampling the generator's prior.
"""
from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np


def bayes_accuracy(words: list[str], observations: list[str], k: int = 1) -> float:
    """Top-``k`` accuracy of the Bayes decision of the word from a discrete observation, under
    the empirical joint of (word, observation): Σ_obs (sum of its ``k`` largest word counts) / N.

    >>> bayes_accuracy(["pat", "bat", "fan", "fan"], ["PAT", "PAT", "FAN", "FAN"])
    0.75
    """
    by_obs: dict[str, Counter] = defaultdict(Counter)
    for w, o in zip(words, observations):
        by_obs[o][w] += 1
    hits = sum(sum(c for _, c in counts.most_common(k)) for counts in by_obs.values())
    return hits / max(len(words), 1)


def oracle_metrics(root: str | Path, split: str = "test") -> dict:
    """{"visual": {top1, top5}, "audio": {top1, top5}, "speaker": {chance, majority, n_speakers},
    "n_words", "n_viseme_classes", "chance"} on ``split`` of a lip-words set."""
    path = Path(root) / "meta.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: the oracle needs a lip-words set's meta.csv")
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == split]
    if not rows:
        raise ValueError(f"{path}: no clips of split {split!r}")
    words = [r["word"] for r in rows]
    speakers = Counter(r["speaker"] for r in rows)
    return {
        "visual": {f"top{k}": bayes_accuracy(words, [r["visemes"] for r in rows], k) for k in (1, 5)},
        "audio": {f"top{k}": bayes_accuracy(words, [r["phonemes"] for r in rows], k) for k in (1, 5)},
        "speaker": {"chance": 1.0 / len(speakers), "majority": max(speakers.values()) / len(rows),
                    "n_speakers": len(speakers)},
        "n_words": len(set(words)), "n_viseme_classes": len({r["visemes"] for r in rows}),
        "chance": {"top1": 1.0 / len(set(words)), "top5": min(5, len(set(words))) / len(set(words))},
    }


def write_oracle(root: str | Path) -> dict:
    metrics = oracle_metrics(root)
    Path(root, "oracle.json").write_text(json.dumps(metrics, indent=1, sort_keys=True))
    return metrics


def simulate_visual_accuracy(word_visemes: dict[str, str], n_trials: int = 20_000, seed: int = 0) -> float:
    """Monte Carlo of the visual oracle under the generator's prior (words uniform, each word's
    viseme sequence fixed): draw a word, show its visemes, decide by the posterior (ties — the
    homophenes — broken at random), count the hits. No media, no closed form."""
    rng = np.random.default_rng(seed)
    vocab = sorted(word_visemes)
    members: dict[str, list[str]] = defaultdict(list)
    for w in vocab:
        members[word_visemes[w]].append(w)
    hits = 0
    for w in rng.choice(vocab, n_trials):
        candidates = members[word_visemes[str(w)]]  # equal posterior under a uniform prior
        hits += candidates[rng.integers(len(candidates))] == w
    return hits / n_trials
