"""UMAP of voice and face embeddings in one space with the prototypes overlaid (notebook 03).

The layout is the slow part: umap-learn compiles its numba kernels in every fresh process (about
a minute on 2 cores) before laying out anything. Two things keep time-to-first-figure small:
the layout is cached per run and parameters (``<run>/umap/<key>.csv``), so re-opening a run's
view costs milliseconds; and numba's compiled kernels are cached on disk
(``NUMBA_CACHE_DIR``, set to ``$AVLAB_CACHE/numba`` before umap is imported) so a fresh kernel
does not recompile them. ``benchmarks/umap_view.py`` measures both.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

COLOR_FIELDS = ("identity", "cluster", "gender", "modality", "split", "age", "size")
SYMBOLS = {"voice": "circle", "face": "square", "voice prototype": "x", "face prototype": "diamond"}


def _numba_cache() -> None:
    if "NUMBA_CACHE_DIR" not in os.environ:
        from avlab.data.voxceleb import cache_dir

        os.environ["NUMBA_CACHE_DIR"] = str(cache_dir() / "numba")


def umap_points(run: str | Path, max_points: int = 5000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows (voice and face of up to ``max_points // 2`` clips, plus prototypes) and their vectors.

    Clips beyond the budget are subsampled at random (seeded); every prototype of the finest
    granularity is kept.
    """
    run = Path(run)
    emb = np.load(run / "embeddings.npz")
    n = len(emb["paths"])
    keep = np.arange(n)
    if 2 * n > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(n, max_points // 2, replace=False))
    cfg = json.loads((run / "config.json").read_text())
    meta_path = Path(cfg["data"]) / "meta.csv"
    meta = pd.read_csv(meta_path).set_index("path") if meta_path.exists() else None
    base = pd.DataFrame({"path": emb["paths"][keep], "identity": emb["identity"][keep], "split": emb["split"][keep]})
    if meta is not None:
        for col in ("gender", "age", "size"):
            if col in meta:
                base[col] = meta.loc[base.path, col].to_numpy()
    base["cluster"] = "-"
    rows = [base.assign(modality="voice"), base.assign(modality="face")]
    vectors = [emb["voice"][keep], emb["face"][keep]]
    if (run / "clusters.safetensors").exists():
        from avlab.viz.clusters import load_run_clusters

        rc = load_run_clusters(run)
        cluster_of = {m: dict(zip(rc.clips.path, getattr(rc, m).assign[-1].numpy())) for m in ("voice", "face")}
        for frame in rows:
            m = frame.modality.iloc[0]
            frame["cluster"] = [f"{m[0]}{cluster_of[m][p]}" if p in cluster_of[m] else "-" for p in frame.path]
        for m in ("voice", "face"):
            cents = getattr(rc, m).centroids[-1].numpy()
            cents = cents / (np.linalg.norm(cents, axis=1, keepdims=True) + 1e-12)
            rows.append(pd.DataFrame({"path": "", "identity": "-", "split": "prototype", "modality": f"{m} prototype",
                                      "cluster": [f"{m[0]}{k}" for k in range(len(cents))]}))
            vectors.append(cents)
    return pd.concat(rows, ignore_index=True), np.concatenate(vectors).astype(np.float32)


def umap_layout(run: str | Path, max_points: int = 5000, seed: int = 0, n_neighbors: int = 15,
                min_dist: float = 0.1, use_cache: bool = True) -> pd.DataFrame:
    """The points of :func:`umap_points` with 2-D UMAP coordinates ``x``, ``y`` (cached per run)."""
    run = Path(run)
    points, vectors = umap_points(run, max_points, seed)
    stamp = (run / "embeddings.npz").stat().st_mtime_ns
    key = hashlib.sha1(json.dumps([max_points, seed, n_neighbors, min_dist, stamp]).encode()).hexdigest()[:12]
    cache = run / "umap" / f"{key}.csv"
    if use_cache and cache.exists():
        return pd.read_csv(cache, keep_default_na=False)
    xy = layout_2d(vectors, n_neighbors, min_dist, seed)
    points = points.assign(x=xy[:, 0], y=xy[:, 1])
    cache.parent.mkdir(exist_ok=True)
    points.to_csv(cache, index=False)
    return points


def layout_2d(vectors: np.ndarray, n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0) -> np.ndarray:
    _numba_cache()
    import umap

    reducer = umap.UMAP(n_neighbors=min(n_neighbors, len(vectors) - 1), min_dist=min_dist, metric="cosine",
                        random_state=seed, n_jobs=1)
    return reducer.fit_transform(vectors)


def umap_figure(points: pd.DataFrame, color_by: str = "identity", line_identity: str | None = None, widget: bool = False):
    """A plotly scatter: one trace per category of ``color_by`` (voices ●, faces ■), prototypes as
    ✕/◆, hover with clip, identity and split; optional lines joining each voice of
    ``line_identity`` to the face of the same clip."""
    import plotly.express as px
    import plotly.graph_objects as go

    if color_by not in points:
        raise ValueError(f"cannot colour by {color_by!r}; choose one of {[c for c in COLOR_FIELDS if c in points]}")
    fig = go.FigureWidget() if widget else go.Figure()
    palette = px.colors.qualitative.Dark24
    clips = points[~points.modality.str.endswith("prototype")]
    protos = points[points.modality.str.endswith("prototype")]
    continuous = pd.api.types.is_float_dtype(clips[color_by])
    if continuous:
        for modality, part in clips.groupby("modality"):
            fig.add_trace(go.Scattergl(x=part.x, y=part.y, mode="markers", name=modality,
                                       marker=dict(color=part[color_by], colorscale="Viridis", symbol=SYMBOLS[modality],
                                                   size=6, showscale=modality == "voice"),
                                       customdata=part.path, hovertext=_hover(part), hoverinfo="text"))
    else:
        for i, (category, part) in enumerate(clips.groupby(clips[color_by].astype(str), sort=True)):
            fig.add_trace(go.Scattergl(x=part.x, y=part.y, mode="markers", name=str(category), legendgroup=str(category),
                                       marker=dict(color=palette[i % len(palette)], size=6,
                                                   symbol=[SYMBOLS[m] for m in part.modality]),
                                       customdata=part.path, hovertext=_hover(part), hoverinfo="text"))
    for modality, part in protos.groupby("modality"):
        fig.add_trace(go.Scattergl(x=part.x, y=part.y, mode="markers", name=modality,
                                   marker=dict(symbol=SYMBOLS[modality], size=10, color="black", line=dict(width=1)),
                                   hovertext=[f"{modality} {c}" for c in part.cluster], hoverinfo="text"))
    if line_identity:
        voices = clips[(clips.identity == line_identity) & (clips.modality == "voice")].set_index("path")
        faces = clips[(clips.identity == line_identity) & (clips.modality == "face")].set_index("path")
        xs, ys = [], []
        for path in voices.index.intersection(faces.index):
            xs += [voices.at[path, "x"], faces.at[path, "x"], None]
            ys += [voices.at[path, "y"], faces.at[path, "y"], None]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=f"{line_identity}: voice—face",
                                 line=dict(color="red", width=1)))
    fig.update_layout(height=560, legend=dict(font=dict(size=9)), margin=dict(l=10, r=10, t=30, b=10),
                      title=f"voices ● and faces ■ coloured by {color_by}")
    return fig


def _hover(part: pd.DataFrame) -> list[str]:
    return [f"{m} · {p}<br>{i} · {s}" for m, p, i, s in zip(part.modality, part.path, part.identity, part.split)]


def umap_explorer(points: pd.DataFrame, data_root: str | Path):
    """Widgets: colour selector, identity line selector, the figure, the hovered face, the selection."""
    import ipywidgets as w

    from avlab.viz.clusters import thumbnail_png

    fields = [c for c in COLOR_FIELDS if c in points]
    colour = w.Dropdown(options=fields, value="identity", description="colour by")
    ids = sorted(points.identity[points.identity != "-"].unique())
    line = w.Dropdown(options=["(none)"] + ids, description="join")
    thumb = w.Image(format="png", width=96, height=96)
    selected = w.HTML(layout={"max_height": "220px", "overflow": "auto"})  # not Output: see cluster_browser
    box = w.VBox()

    def on_hover(trace, state, _):
        if state.point_inds and trace.customdata is not None:
            path = trace.customdata[state.point_inds[0]]
            if path:
                thumb.value = thumbnail_png(data_root, path)

    def on_select(trace, state, _):
        if state.point_inds and trace.customdata is not None:
            rows = points[points.path.isin([trace.customdata[i] for i in state.point_inds])]
            selected.value = rows[["modality", "path", "identity", "split"]].to_html(index=False)

    def redraw(change=None):
        fig = umap_figure(points, colour.value, None if line.value == "(none)" else line.value, widget=True)
        for trace in fig.data:
            trace.on_hover(on_hover)
            trace.on_selection(on_select)
        box.children = [w.HBox([colour, line]), w.HBox([fig, w.VBox([w.Label("hovered face"), thumb])]),
                        w.Label("selection (box/lasso)"), selected]

    colour.observe(redraw, names="value")
    line.observe(redraw, names="value")
    redraw()
    return box
