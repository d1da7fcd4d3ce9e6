"""Curves for the evaluation notebook (05): ROC per verification list, retrieval precision-recall."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from avlab.eval.voiceface import SPLIT_TAGS, read_retrieval, read_verification


def _embeddings(run: Path):
    emb = np.load(Path(run) / "embeddings.npz")
    index = {p: i for i, p in enumerate(emb["paths"])}
    return emb, index


def _data(run: Path) -> Path:
    return Path(json.loads((Path(run) / "eval.json").read_text())["data"])


def verification_scores(run: str | Path, split: str = "unseen_unheard", kind: str = "random"):
    """(cosine scores, labels) of a run on one verification list (kind: random = U, or G)."""
    emb, index = _embeddings(run)
    rows = read_verification(_data(run) / "lists" / f"veriflist_test_{kind}_{SPLIT_TAGS[split]}.txt")
    v = emb["voice"][[index[r[0]] for r in rows]]
    f = emb["face"][[index[r[1]] for r in rows]]
    return (v * f).sum(1), np.array([r[2] for r in rows])


def roc_figure(runs: list[str | Path], split: str = "unseen_unheard"):
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for ax, (kind, key) in zip(axes, (("random", "U"), ("G", "G"))):
        for r in runs:
            s, y = verification_scores(r, split, kind)
            fpr, tpr, _ = roc_curve(y, s)
            ax.plot(fpr, tpr, label=f"{Path(r).name} (AUC {roc_auc_score(y, s):.3f})")
        ax.plot([0, 1], [0, 1], ls="--", color="grey", label="chance")
        ax.set(xlabel="false positive rate", title=f"verification {key} ({split})")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("true positive rate")
    fig.tight_layout()
    return fig


def retrieval_pr(run: str | Path, split: str = "unseen_unheard", direction: str = "v2f"):
    """Precision and recall over all (query, gallery) pairs, ranked by cosine (micro-averaged)."""
    from sklearn.metrics import precision_recall_curve

    emb, index = _embeddings(run)
    lists = _data(run) / "lists"
    tag = SPLIT_TAGS[split]
    q_rows = read_retrieval(lists / f"retrieval_{'wav' if direction == 'v2f' else 'jpg'}_{tag}.csv")
    g_rows = read_retrieval(lists / f"retrieval_{'jpg' if direction == 'v2f' else 'wav'}_{tag}.csv")
    q = emb["voice" if direction == "v2f" else "face"][[index[r[0]] for r in q_rows]]
    g = emb["face" if direction == "v2f" else "voice"][[index[r[0]] for r in g_rows]]
    rel = np.array([r[1] for r in q_rows])[:, None] == np.array([r[1] for r in g_rows])[None, :]
    precision, recall, _ = precision_recall_curve(rel.ravel(), (q @ g.T).ravel())
    return precision, recall, float(rel.mean())


def pr_figure(runs: list[str | Path], split: str = "unseen_unheard"):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for ax, direction in zip(axes, ("v2f", "f2v")):
        base = None
        for r in runs:
            p, rc, base = retrieval_pr(r, split, direction)
            ax.plot(rc, p, label=Path(r).name)
        ax.axhline(base, ls="--", color="grey", label="chance")
        ax.set(xlabel="recall", title=f"retrieval {direction} ({split})")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("precision")
    fig.tight_layout()
    return fig
