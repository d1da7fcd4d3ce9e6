"""Figures and tables for lip reading: the lip-words part of the data tour (00) and notebook 07.

ADC-SSL's claim (DESIGN §2.2) is about what the visual features keep: the word, not the speaker
and not the modality. Notebook 07 looks at it from an evaluated run's files, never re-running a
model: ``eval.json`` (the protocol), ``lipreading.npz`` (each test clip's label, speaker, the
frozen back-end's logits and its clip-level visual features) and ``metrics.jsonl`` (the training
curves). Words are shown grouped by **homophene class** — words with one viseme sequence, which
no lip reader can tell apart — because confusions inside a class are the data's, not the model's.

Everything here returns a table or a figure (plotly where the notebook is interactive, matplotlib
for the PNG files the notebooks write); the notebooks only call, show and save.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from avlab.data import media
from avlab.data.lrw import FPS, SAMPLE_RATE
from avlab.eval.tree import flatten
from avlab.runs import read_metrics

CHANCE_COLOUR, ORACLE_COLOUR = "#555555", "#d62728"


# --- the set: vocabulary, homophene groups, oracle --------------------------------------------------
def read_homophenes(root: str | Path) -> list[list[str]]:
    """The homophene groups of a lip-words set (``latents/vocabulary.json``); [] for a set without
    latents (real LRW names none)."""
    path = Path(root) / "latents" / "vocabulary.json"
    return json.loads(path.read_text())["homophenes"] if path.exists() else []


def homophene_groups(words, homophenes=()) -> list[list[str]]:
    """``words`` partitioned for display: each homophene group (of two or more of ``words``, in the
    vocabulary's order) together, then every word with a viseme sequence of its own, alphabetically."""
    present = set(words)
    groups = [kept for g in homophenes if len(kept := [w for w in g if w in present]) > 1]
    grouped = {w for g in groups for w in g}
    return groups + [[w] for w in sorted(present - grouped)]


def homophene_table(root: str | Path) -> pd.DataFrame:
    """One row per viseme class of the vocabulary: its viseme sequence and its words, the
    homophene groups (several words) first."""
    vocab = json.loads((Path(root) / "latents" / "vocabulary.json").read_text())["words"]
    classes: dict[str, list[str]] = {}
    for v in vocab:
        classes.setdefault("-".join(v["visemes"]), []).append(v["word"])
    table = pd.DataFrame({"visemes": list(classes), "words": [" / ".join(w) for w in classes.values()],
                          "n_words": [len(w) for w in classes.values()]})
    return table.sort_values("n_words", ascending=False, kind="stable").reset_index(drop=True)


def oracle_table(root: str | Path) -> pd.DataFrame:
    """``oracle.json`` of a lip-words set as (split, metric, oracle) rows — the shape of the
    talking-faces oracle table, so the data tour shows either the same way. ``visual``: an ideal
    lip reader (homophenes indistinguishable); ``audio``: an ideal listener; ``chance``; ``speaker``:
    the chance of naming the speaker, the reference for identity leakage."""
    values = flatten(json.loads((Path(root) / "oracle.json").read_text()))
    return pd.DataFrame({"split": "test", "metric": list(values), "oracle": list(values.values())})


def set_figure(root: str | Path, meta: pd.DataFrame):
    """Clips per split, clips per speaker and words per viseme class: how much each word and
    speaker is seen, and how many words share a mouth."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 2.6))
    meta.split.value_counts().reindex(["train", "val", "test"]).plot.bar(ax=axes[0], rot=0, title="clips per split")
    axes[1].hist(meta.speaker.value_counts(), bins=15)
    axes[1].set(title=f"clips per speaker ({meta.speaker.nunique()} speakers)", xlabel="clips")
    sizes = homophene_table(root).n_words.value_counts().sort_index()
    axes[2].bar(sizes.index.astype(str), sizes.values)
    axes[2].set(title="viseme classes by words sharing them", xlabel="words in the class", ylabel="classes")
    fig.tight_layout()
    return fig


# --- the set: mouths and sound ---------------------------------------------------------------------
def strip_clips(meta: pd.DataFrame, words: list[str]) -> pd.DataFrame:
    """One clip per word, from the speaker who said most of them, so that homophenes look alike
    because they are alike and not because different mouths say them."""
    said = meta[meta.word.isin(words)]
    speaker = said.groupby("speaker").word.nunique().idxmax()
    rows = [(mine if len(mine := said[(said.word == w) & (said.speaker == speaker)]) else said[said.word == w]).iloc[0]
            for w in words]
    return pd.DataFrame(rows).reset_index(drop=True)


def mouth_strips(root: str | Path, meta: pd.DataFrame, n_words: int = 10, n_frames: int = 8):
    """A row of mouth frames across each word (from two frames before it to two after), words in
    homophene order: rows of one group should look the same, rows of different groups not."""
    import matplotlib.pyplot as plt

    order = [w for g in homophene_groups(meta.word.unique(), read_homophenes(root)) for w in g][:n_words]
    clips = strip_clips(meta, order)
    fig, axes = plt.subplots(len(clips), n_frames, figsize=(0.75 * n_frames + 1.8, 0.78 * len(clips)), squeeze=False)
    for r, clip in clips.iterrows():
        frames = media.read_frames(Path(root) / clip.path)
        lo = max(0, int(clip.word_start * FPS) - 2)
        hi = min(len(frames) - 1, int(np.ceil(clip.word_end * FPS)) + 2)
        for c, i in enumerate(np.linspace(lo, hi, n_frames).round().astype(int)):
            axes[r, c].imshow(frames[i][..., 0], cmap="gray", vmin=0, vmax=255)
            axes[r, c].axis("off")
        axes[r, 0].text(-0.15, 0.5, f"{clip.word}\n{clip.visemes}", transform=axes[r, 0].transAxes, ha="right",
                        va="center", fontsize=7)
    fig.suptitle(f"one clip per word (speaker {clips.speaker.mode()[0]} where they said it), frames across the word",
                 fontsize=9)
    fig.tight_layout()
    return fig


def mfcc_mouth_figure(root: str | Path, clip: pd.Series, n_mfcc: int = 13):
    """The clip's MFCC (what the audio encoder reads) over its mouth opening (what the video shows),
    on one time axis, the word's span shaded: the two streams ADC-SSL contrasts frame by frame."""
    import matplotlib.pyplot as plt
    import torch

    from avlab.data.features import mfcc
    from avlab.viz.data_tour import mouth_opening

    audio = media.read_audio(Path(root) / clip.path)
    coeffs = mfcc(torch.from_numpy(audio), SAMPLE_RATE, n_mfcc).numpy()
    coeffs = (coeffs - coeffs.mean(1, keepdims=True)) / (coeffs.std(1, keepdims=True) + 1e-5)  # as the encoder sees it
    opening = mouth_opening(root, clip.path)
    seconds = len(opening) / FPS
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 3.6), sharex=True, height_ratios=[1.3, 1])
    top.imshow(coeffs, origin="lower", aspect="auto", extent=[0, len(audio) / SAMPLE_RATE, 0, n_mfcc], cmap="magma")
    top.set(ylabel="MFCC (normalised)", title=f"{clip.word} ({clip.speaker}): “{clip.text}”")
    bottom.plot((np.arange(len(opening)) + 0.5) / FPS, opening, marker=".", label="mouth opening")
    bottom.axvspan(clip.word_start, clip.word_end, color="tab:green", alpha=0.15, lw=0,
                   label=f"“{clip.word.lower()}”")
    top.vlines([clip.word_start, clip.word_end], 0, n_mfcc, colors="white", linestyles="--", lw=1)
    bottom.set(xlabel="time (s)", ylabel="opening", xlim=(0, seconds))
    bottom.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


# --- a run: its predictions and features ------------------------------------------------------------
@dataclass
class LipReadingRun:
    """An evaluated lip-reading run's test clips (one row each: path, word, predicted, correct,
    speaker, group), their clip-level visual features and the protocol's ``eval.json``."""
    run: Path
    data: Path
    eval: dict
    clips: pd.DataFrame
    visual: np.ndarray
    groups: list[list[str]]

    @property
    def chance(self) -> float:
        return 1.0 / len(self.eval["words"])

    @property
    def visual_oracle(self) -> float | None:
        """The ideal lip reader's top-1 on this set (None without ``oracle.json``)."""
        path = self.data / "oracle.json"
        return json.loads(path.read_text())["visual"]["top1"] if path.exists() else None


def speaker_names(root: str | Path, paths, ids) -> list[str]:
    """Each clip's speaker as named by the set's ``meta.csv``; its index (``#3``) where the set has
    no meta, "" where the protocol knew no speaker (id −1)."""
    meta = Path(root) / "meta.csv"
    named = pd.read_csv(meta, usecols=["path", "speaker"]).set_index("path").speaker.to_dict() if meta.exists() else {}
    return [named.get(p, f"#{i}") if i >= 0 else "" for p, i in zip(paths, ids)]


def load_lipreading(run: str | Path) -> LipReadingRun:
    """The test predictions of ``run`` (``avlab eval`` must have written lipreading.npz)."""
    run = Path(run)
    path = run / "lipreading.npz"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {run} an evaluated lip-reading run (avlab eval --run {run})?")
    result = json.loads((run / "eval.json").read_text())
    data = Path(result["data"])
    npz = np.load(path)
    words = [str(w) for w in npz["words"]]
    paths = [str(p) for p in npz["paths"]]
    truth, predicted = np.array(words)[npz["label"]], np.array(words)[npz["logits"].argmax(1)]
    groups = homophene_groups(words, read_homophenes(data))
    group_of = {w: " / ".join(g) for g in groups for w in g}
    clips = pd.DataFrame({"path": paths, "word": truth, "predicted": predicted, "correct": truth == predicted,
                          "speaker": speaker_names(data, paths, npz["speaker"]),
                          "group": [group_of[w] for w in truth]})
    return LipReadingRun(run, data, result, clips, npz["visual"].astype(np.float32), groups)


# --- confusions by homophene group ------------------------------------------------------------------
def confusion_table(truth, predicted, groups: list[list[str]]) -> pd.DataFrame:
    """Counts of (true word, predicted word), rows and columns in homophene-group order."""
    order = [w for g in groups for w in g]
    at = {w: i for i, w in enumerate(order)}
    counts = np.zeros((len(order), len(order)), dtype=int)
    np.add.at(counts, ([at[w] for w in truth], [at[w] for w in predicted]), 1)
    return pd.DataFrame(counts, index=pd.Index(order, name="true"), columns=pd.Index(order, name="predicted"))


def homophene_errors(table: pd.DataFrame, groups: list[list[str]]) -> dict:
    """How many errors stay inside the true word's homophene group — the ones even a perfect lip
    reader makes — beside the share that errors spread uniformly over the other words would give."""
    size = {w: len(g) for g in groups for w in g}
    group = {w: i for i, g in enumerate(groups) for w in g}
    counts, words = table.to_numpy(), list(table.index)
    same = np.array([[group[a] == group[b] for b in words] for a in words])
    wrong = counts * ~np.eye(len(words), dtype=bool)
    errors = int(wrong.sum())
    uniform = sum(wrong[i].sum() * (size[w] - 1) / max(len(words) - 1, 1) for i, w in enumerate(words))
    return {"clips": int(counts.sum()), "errors": errors, "within_group": int((wrong * same).sum()),
            "share": (wrong * same).sum() / errors if errors else float("nan"),
            "uniform_share": uniform / errors if errors else float("nan")}


def homophene_errors_text(stats: dict) -> str:
    """:func:`homophene_errors` as the sentence the notebook prints."""
    return (f"{stats['errors']} errors in {stats['clips']} test clips; {stats['within_group']} of them "
            f"({stats['share']:.0%}) confuse homophenes, against {stats['uniform_share']:.0%} if errors fell on any "
            "other word alike")


def _group_spans(groups: list[list[str]]) -> list[tuple[int, int]]:
    """(first, last) positions of the multi-word groups in the display order."""
    spans, start = [], 0
    for g in groups:
        if len(g) > 1:
            spans.append((start, start + len(g) - 1))
        start += len(g)
    return spans


def _shares(table: pd.DataFrame) -> np.ndarray:
    return table.to_numpy() / np.maximum(table.to_numpy().sum(1, keepdims=True), 1)


def confusion_plot(table: pd.DataFrame, groups: list[list[str]]):
    """Interactive heat map of each true word's predictions (share of its clips), words grouped by
    homophene class with a box around each group; hover gives the counts and the group."""
    import plotly.graph_objects as go

    words = list(table.index)
    group_of = {w: " / ".join(g) for g in groups for w in g}
    counts = table.to_numpy()
    hover = [[f"true <b>{t}</b> → predicted <b>{p}</b><br>{counts[i, j]} of {counts[i].sum()} clips"
              f"<br>homophenes: {group_of[t]}" for j, p in enumerate(words)] for i, t in enumerate(words)]
    fig = go.Figure(go.Heatmap(z=_shares(table), x=words, y=words, colorscale="Blues", zmin=0, zmax=1,
                               text=hover, hoverinfo="text", colorbar=dict(title="share")))
    for a, b in _group_spans(groups):
        fig.add_shape(type="rect", x0=a - 0.5, x1=b + 0.5, y0=a - 0.5, y1=b + 0.5, line=dict(color="#d62728", width=2))
    n = len(words)
    fig.update_layout(height=max(420, 16 * n + 140), width=max(480, 16 * n + 220),
                      title="confusions (rows: true word, share of its test clips); boxes: homophene groups",
                      xaxis=dict(title="predicted", tickangle=-60, tickfont=dict(size=9)),
                      yaxis=dict(title="true", autorange="reversed", tickfont=dict(size=9)),
                      margin=dict(l=80, r=10, t=50, b=80))
    return fig


def confusion_figure(table: pd.DataFrame, groups: list[list[str]]):
    """The static twin of :func:`confusion_plot` (for ``confusion.png``)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    n = len(table)
    fig, ax = plt.subplots(figsize=(0.22 * n + 2.5, 0.22 * n + 1.8))
    im = ax.imshow(_shares(table), cmap="Blues", vmin=0, vmax=1)
    for a, b in _group_spans(groups):
        ax.add_patch(Rectangle((a - 0.5, a - 0.5), b - a + 1, b - a + 1, fill=False, ec="#d62728", lw=1.5))
    ax.set_xticks(range(n), table.columns, rotation=90, fontsize=7)
    ax.set_yticks(range(n), table.index, fontsize=7)
    ax.set(xlabel="predicted", ylabel="true", title="confusions by homophene group")
    fig.colorbar(im, ax=ax, fraction=0.04, label="share of the true word's clips")
    fig.tight_layout()
    return fig


# --- per speaker --------------------------------------------------------------------------------
def wilson_interval(hits, n, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """95 % Wilson score interval of a proportion: sound at the few clips a speaker has."""
    hits, n = np.asarray(hits, float), np.asarray(n, float)
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def per_speaker_accuracy(clips: pd.DataFrame) -> pd.DataFrame:
    """Word top-1 per speaker with its 95 % interval, lowest first (clips without a speaker are
    left out)."""
    known = clips[clips.speaker != ""]
    by = known.groupby("speaker").correct
    table = pd.DataFrame({"clips": by.size(), "correct": by.sum().astype(int)})
    table["accuracy"] = table.correct / table.clips
    table["ci_low"], table["ci_high"] = wilson_interval(table.correct, table.clips)
    return table.sort_values(["accuracy", "clips"]).reset_index()


def per_speaker_figure(table: pd.DataFrame, chance: float, overall: float, oracle: float | None = None):
    """Bars per speaker (95 % interval), with the overall accuracy, chance and the ideal lip reader:
    a reader of words, not of mouths, reads every speaker about alike."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, 0.16 * len(table) + 2), 3.0))
    x = np.arange(len(table))
    ax.bar(x, table.accuracy, color="tab:blue", alpha=0.8,
           yerr=[table.accuracy - table.ci_low, table.ci_high - table.accuracy], error_kw=dict(lw=0.6))
    ax.axhline(overall, color="tab:blue", lw=1, label=f"all clips ({overall:.2f})")
    ax.axhline(chance, color=CHANCE_COLOUR, ls="--", lw=1, label=f"chance ({chance:.2f})")
    if oracle is not None:
        ax.axhline(oracle, color=ORACLE_COLOUR, ls=":", lw=1.2, label=f"ideal lip reader ({oracle:.2f})")
    ax.set_xticks(x, table.speaker, rotation=90, fontsize=6)
    ax.set(ylim=(0, 1.02), ylabel="word top-1", title="word accuracy per test speaker (95 % Wilson interval)")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


# --- identity leakage across runs ---------------------------------------------------------------
def resolve_runs(entries) -> list[Path]:
    """Evaluated runs from run folders and from folders of runs (``benchmarks/lipreading.py`` puts one
    per variant and seed in its ``--out``), in the order given, each folder's runs sorted."""
    runs = []
    for entry in entries:
        path = Path(entry)
        found = [path] if (path / "eval.json").exists() else sorted(p.parent for p in path.glob("*/eval.json"))
        if not found:
            raise FileNotFoundError(f"{path}: neither an evaluated run (eval.json) nor a folder of evaluated runs")
        runs += found
    return runs


def run_label(config: dict) -> str:
    """The method and its options as given (``adc-ssl (long=False)``); ``· random init`` for a run
    trained 0 epochs. Seeds of one configuration share a label, so they are shown together."""
    args = ", ".join(f"{k}={v}" for k, v in sorted(config.get("method_args", {}).items()))
    return config["method"] + (f" ({args})" if args else "") + (" · random init" if config.get("epochs") == 0 else "")


def leakage_table(runs) -> pd.DataFrame:
    """Per run: the speaker probe's accuracy on frozen visual features (identity leakage, lower is
    better) and its chance, beside the frozen word top-1 and its chance."""
    rows = []
    for run in map(Path, runs):
        result = json.loads((run / "eval.json").read_text())
        test = result["metrics"]["test"]
        leak = test.get("identity_leakage", {})
        rows.append({"label": run_label(json.loads((run / "config.json").read_text())), "run": run.name,
                     "speaker_acc": leak.get("speaker_acc", np.nan), "speaker_chance": leak.get("chance", np.nan),
                     "top1": test["frozen"]["top1"], "top1_chance": 1.0 / len(result["words"])})
    return pd.DataFrame(rows)


def leakage_figure(table: pd.DataFrame):
    """Per configuration (seeds pooled: the bar is their mean, dots the runs): identity leakage
    beside its chance, and the word top-1 beside its chance — leakage is only low for a reason if
    the words are still read."""
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(table.label))
    x = np.arange(len(labels))
    fig, axes = plt.subplots(1, 2, figsize=(max(7.0, 1.3 * len(labels) + 4), 3.4))
    panels = (("speaker_acc", "speaker_chance", "identity leakage: speaker probe (lower is better)", "tab:red"),
              ("top1", "top1_chance", "word top-1, frozen front-end (higher is better)", "tab:blue"))
    for ax, (col, ref, title, colour) in zip(axes, panels):
        by = table.groupby("label", sort=False)
        ax.bar(x, by[col].mean().reindex(labels), color=colour, alpha=0.7)
        for i, label in enumerate(labels):
            runs = table[table.label == label]
            ax.scatter(np.full(len(runs), i), runs[col], color="black", s=12, zorder=3)
        ax.hlines(by[ref].mean().reindex(labels), x - 0.4, x + 0.4, colors=CHANCE_COLOUR, linestyles="--", lw=1.5,
                  label="chance")
        ax.set_xticks(x, labels, rotation=25, ha="right", fontsize=8)
        ax.set(ylim=(0, 1.02), title=title)
        ax.title.set_fontsize(9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# --- the visual features: by word, by speaker ----------------------------------------------------
def neighbour_agreement(vectors: np.ndarray, labels, k: int = 10) -> tuple[float, float]:
    """The share of each clip's ``k`` nearest neighbours (cosine, itself excluded) with its label,
    averaged, and the same share for neighbours drawn at random: Σ n_c(n_c − 1) / (N(N − 1))."""
    from avlab.viz.umap_view import knn_cosine

    labels = np.asarray(labels)
    n = len(labels)
    k = min(k, n - 1)
    idx, _ = knn_cosine(vectors, k + 1)
    shared = [np.mean(labels[[j for j in row if j != i][:k]] == labels[i]) for i, row in enumerate(idx)]
    counts = np.unique(labels, return_counts=True)[1]
    return float(np.mean(shared)), float((counts * (counts - 1)).sum() / (n * (n - 1)))


def cluster_scores(lr: LipReadingRun, k: int = 10) -> pd.DataFrame:
    """How the visual features group test clips by word and by speaker: neighbour agreement (with
    its chance and their ratio) and the cosine silhouette (≈ 0: the label is mixed through)."""
    from sklearn.metrics import silhouette_score

    rows = []
    for by in ("word", "speaker"):
        keep = (lr.clips[by] != "").to_numpy()
        labels = lr.clips[by][keep].to_numpy()
        if not 2 <= len(set(labels)) < keep.sum():
            continue
        agree, chance = neighbour_agreement(lr.visual[keep], labels, k)
        rows.append({"by": by, "groups": len(set(labels)), "neighbours_sharing": agree, "chance": chance,
                     "lift": agree / chance if chance else np.nan,
                     "silhouette": float(silhouette_score(lr.visual[keep], labels, metric="cosine"))})
    return pd.DataFrame(rows)


def claim_text(scores: pd.DataFrame, k: int = 10) -> str:
    """One sentence stating what the scores show about "clustered by word, mixed by speaker"."""
    s = scores.set_index("by")
    parts = [f"{by}: {r.neighbours_sharing:.2f} of a clip's {k} nearest neighbours share it (chance {r.chance:.2f}, "
             f"×{r.lift:.1f}), silhouette {r.silhouette:+.2f}" for by, r in s.iterrows()]
    text = "; ".join(parts)
    if {"word", "speaker"} <= set(s.index):
        more, less = ("word", "speaker") if s.lift["word"] > s.lift["speaker"] else ("speaker", "word")
        text += f" — the features group clips by {more} more than by {less}"
    return text


def umap_points(lr: LipReadingRun, max_points: int = 2000, n_neighbors: int = 15, seed: int = 0) -> pd.DataFrame:
    """The test clips (a seeded sample of ``max_points`` if more) with a 2-D UMAP of their visual
    features (cosine, :func:`avlab.viz.umap_view.layout_2d`) as ``x``, ``y``."""
    from avlab.viz.umap_view import layout_2d

    keep = np.arange(len(lr.clips))
    if len(keep) > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(len(keep), max_points, replace=False))
    xy = layout_2d(lr.visual[keep], n_neighbors, seed=seed)
    return lr.clips.iloc[keep].assign(x=xy[:, 0], y=xy[:, 1]).reset_index(drop=True)


def _palette(n: int) -> list[str]:
    import plotly.express as px

    colours = px.colors.qualitative.Dark24 + px.colors.qualitative.Light24
    return [colours[i % len(colours)] for i in range(n)]


def umap_plot(points: pd.DataFrame):
    """The UMAP twice, coloured by word (legend) and by speaker; hover names the clip, its word,
    homophene group, prediction and speaker. Word-coloured islands with speaker colours mixed
    through them is what the claim predicts."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(1, 2, subplot_titles=("coloured by word", "coloured by speaker"),
                        horizontal_spacing=0.04)
    hover = [f"{p}<br>word <b>{w}</b> ({g}) → {q}<br>speaker {s}"
             for p, w, g, q, s in zip(points.path, points.word, points.group, points.predicted, points.speaker)]
    points = points.assign(hover=hover)
    for col, by in enumerate(("word", "speaker"), start=1):
        names = sorted(points[by].unique())
        for name, colour in zip(names, _palette(len(names))):
            part = points[points[by] == name]
            fig.add_trace(go.Scatter(x=part.x, y=part.y, mode="markers", name=str(name) or "?",
                                     legendgroup=by, showlegend=by == "word", marker=dict(color=colour, size=6),
                                     hovertext=part.hover, hoverinfo="text"), 1, col)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    fig.update_layout(height=520, title=f"UMAP of the clip-level visual features ({len(points)} test clips)",
                      legend=dict(font=dict(size=9), title="word"), margin=dict(l=10, r=10, t=60, b=10))
    return fig


def umap_figure(points: pd.DataFrame):
    """The static twin of :func:`umap_plot` (for ``umap.png``)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    for ax, by in zip(axes, ("word", "speaker")):
        names = sorted(points[by].unique())
        for name, colour in zip(names, _palette(len(names))):
            part = points[points[by] == name]
            ax.scatter(part.x, part.y, s=9, color=colour, label=name)
        ax.set(xticks=[], yticks=[], title=f"coloured by {by} ({len(names)})")
    if points.word.nunique() <= 40:
        axes[0].legend(fontsize=6, ncol=2, loc="center left", bbox_to_anchor=(-0.42, 0.5), frameon=False)
    fig.tight_layout()
    return fig


# --- training: the adversaries ------------------------------------------------------------------
ADVERSARY_KEYS = ("lambda", "id_acc", "mod_acc")
LOSS_TERMS = ("short", "long", "identity", "modality")


def training_curves(run: str | Path) -> pd.DataFrame:
    """The training rows of ``metrics.jsonl`` with the step, epoch, λ, the adversaries' accuracies and
    the loss terms that the method logged."""
    rows = pd.DataFrame([r for r in read_metrics(run) if "loss" in r])
    keep = [c for c in ("epoch", "step", "loss", *ADVERSARY_KEYS, *LOSS_TERMS) if c in rows]
    return rows[keep]


def adversary_figure(curves: pd.DataFrame):
    """λ (the gradient reversal's strength), the discriminators' training accuracies (0.5: they
    cannot tell speaker pairs or modalities apart, what the reversed gradient pushes the features
    towards) and the loss terms, over training steps."""
    import matplotlib.pyplot as plt

    x = curves["step"] if "step" in curves else np.arange(len(curves))
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.0))
    panels = ((("lambda",), "GRL λ"), (("id_acc", "mod_acc"), "adversary accuracy"), (LOSS_TERMS, "loss terms"))
    names = {"lambda": "λ", "id_acc": "identity (same speaker?)", "mod_acc": "modality (audio or video?)"}
    for ax, (keys, title) in zip(axes, panels):
        shown = [k for k in keys if k in curves]
        for k in shown:
            ax.plot(x, curves[k], marker=".", label=names.get(k, k))
        if not shown:
            ax.text(0.5, 0.5, "not logged by this method", ha="center", va="center", transform=ax.transAxes)
        elif keys == ("id_acc", "mod_acc"):
            ax.axhline(0.5, color=CHANCE_COLOUR, ls="--", lw=1, label="chance (fooled)")
            ax.set_ylim(0, 1.02)
        ax.set(title=title, xlabel="step")
        if shown:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
