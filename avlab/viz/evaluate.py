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


# --- interactive (plotly) curves and listened-to examples -----------------------------------------
def _thin(*arrays, n: int = 400):
    """At most ``n`` evenly spaced points of aligned curve arrays (keeps the export small)."""
    idx = np.unique(np.linspace(0, len(arrays[0]) - 1, min(n, len(arrays[0]))).astype(int))
    return [np.asarray(a)[idx] for a in arrays]


def roc_plot(runs: list[str | Path], split: str = "unseen_unheard"):
    """ROC of each run on the U and G verification lists, beside the chance diagonal."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
    from sklearn.metrics import roc_auc_score, roc_curve

    from avlab.viz.report import CHANCE_STYLE, SPLIT_LABELS, _palette, run_names

    lists = (("random", "U (random negatives)"), ("G", "G (same-gender negatives)"))
    fig = make_subplots(1, 2, shared_yaxes=True, subplot_titles=[t for _, t in lists])
    palette = _palette()
    for col, (kind, _) in enumerate(lists, start=1):
        for i, (name, r) in enumerate(zip(run_names(runs), runs)):
            s, y = verification_scores(r, split, kind)
            fpr, tpr, thr = _thin(*roc_curve(y, s))
            fig.add_trace(go.Scatter(
                x=fpr, y=tpr, name=f"{name} (AUC {roc_auc_score(y, s):.3f})", legendgroup=name, mode="lines",
                line=dict(color=palette[i % len(palette)]), customdata=thr,
                hovertemplate=f"<b>{name}</b><br>false positives %{{x:.3f}}<br>true positives %{{y:.3f}}"
                              f"<br>cosine ≥ %{{customdata:.3f}}<extra></extra>"), 1, col)
        fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], name="chance", legendgroup="chance", showlegend=col == 1,
                                 mode="lines", line=CHANCE_STYLE, hoverinfo="skip"), 1, col)
    fig.update_xaxes(title_text="false positive rate", range=[0, 1])
    fig.update_yaxes(title_text="true positive rate", range=[0, 1.02], col=1)
    fig.update_layout(height=400, title=f"verification ROC, {SPLIT_LABELS.get(split, split)}",
                      margin=dict(l=50, r=10, t=70, b=10))
    return fig


def pr_plot(runs: list[str | Path], split: str = "unseen_unheard"):
    """Retrieval precision-recall of each run in both directions, beside chance (the share of
    relevant pairs)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from avlab.viz.report import CHANCE_STYLE, SPLIT_LABELS, TOKENS, _palette, run_names

    directions = ("v2f", "f2v")
    fig = make_subplots(1, 2, shared_yaxes=True, subplot_titles=[TOKENS[d] for d in directions])
    palette = _palette()
    for col, direction in enumerate(directions, start=1):
        base = None
        for i, (name, r) in enumerate(zip(run_names(runs), runs)):
            p, rc, base = retrieval_pr(r, split, direction)
            p, rc = _thin(p, rc)
            fig.add_trace(go.Scatter(
                x=rc, y=p, name=name, legendgroup=name, showlegend=col == 1, mode="lines",
                line=dict(color=palette[i % len(palette)]),
                hovertemplate=f"<b>{name}</b><br>recall %{{x:.3f}}<br>precision %{{y:.3f}}<extra></extra>"), 1, col)
        fig.add_trace(go.Scatter(x=[0, 1], y=[base, base], name="chance", legendgroup="chance", showlegend=col == 1,
                                 mode="lines", line=CHANCE_STYLE,
                                 hovertemplate=f"chance: precision {base:.3f}<extra></extra>"), 1, col)
    fig.update_xaxes(title_text="recall", range=[0, 1])
    fig.update_yaxes(title_text="precision", range=[0, 1.02], col=1)
    fig.update_layout(height=400, title=f"retrieval precision-recall, {SPLIT_LABELS.get(split, split)}",
                      margin=dict(l=50, r=10, t=70, b=10))
    return fig


def ranking_examples(run: str | Path, n_queries: int = 3, top_k: int = 5, split: str = "unseen_unheard",
                     direction: str = "v2f", seed: int = 0) -> str:
    """What the run retrieves, to look at and listen to: for ``n_queries`` random test clips, the
    query (voice player or face) and its ``top_k`` nearest clips of the other modality among the
    split's other clips (faces or voice players), ✓ where the identity matches. Self-contained HTML."""
    from avlab.viz import media

    emb, _ = _embeddings(run)
    root = _data(run)
    rows = np.flatnonzero(emb["split"] == split)
    if not len(rows):
        raise ValueError(f"{run}/embeddings.npz holds no {split} clips")
    q_mod, g_mod = ("voice", "face") if direction == "v2f" else ("face", "voice")
    rng = np.random.default_rng(seed)
    queries = rng.choice(rows, min(n_queries, len(rows)), replace=False)
    paths, ids = emb["paths"], emb["identity"]

    def item(i, modality, caption):
        part = (media.clip_audio_html(root, paths[i]) if modality == "voice"
                else media.img_html(media.thumbnail_png(root, paths[i], 80), 80, paths[i]))
        return media.card([part], caption)

    blocks = []
    for q in queries:
        gallery = rows[rows != q]
        scores = emb[g_mod][gallery] @ emb[q_mod][q]
        order = gallery[np.argsort(-scores)[:top_k]]
        cards = [item(q, q_mod, f"<b>query</b> {media.label(ids[q])}")]
        for rank, g in enumerate(order, start=1):
            mark = "✓" if ids[g] == ids[q] else "✗"
            cards.append(item(g, g_mod, f"#{rank} {mark} {media.label(ids[g])}<br>cos "
                                        f"{float(emb[g_mod][g] @ emb[q_mod][q]):.3f}"))
        blocks.append(media.gallery(cards, row=True))
    head = (f"<p>{Path(run).name}: {q_mod} queries, the {top_k} nearest {g_mod}s among "
            f"{len(rows) - 1} {split.replace('_', '-')} clips (✓ same identity)</p>")
    return head + "".join(blocks)
