"""UMAP of voice and face embeddings in one space with the prototypes overlaid (notebook 03).

Time to the first figure in a fresh kernel, 20,000 points on 2 loaded cores
(``benchmarks/umap_view.py``): it was 68–78 s with numba's cache warm and ~2 min without, most
of it numba compiling: pynndescent's nearest-neighbour search, whose compiled code numba
cannot cache ("dynamic globals"), and umap-learn's own kernels, which are not ``cache=True``, so
``NUMBA_CACHE_DIR`` saved only the import. Now the first figure takes ~5 s and the UMAP ~25 s
(~1 min on a machine's first run):

* the first view is immediate: :func:`first_view` returns the points with the run's cached UMAP
  layout if there is one, else with a PCA layout (the PCA itself is a fraction of a second; the
  figure's title says it is a preview), and a future of the UMAP layout, computed in a background
  thread. :func:`umap_explorer` moves its figure's points to the UMAP layout in place when it is
  ready; the notebook's static figure (``umap.json``/``umap.html``, the HTML export, papermill
  runs) waits for it, so what a notebook shows and writes in the end is always the UMAP;
* the UMAP compiles once per machine: the exact cosine k-NN (faiss, brute force, a few seconds
  for 20,000 points) is handed to umap-learn as ``precomputed_knn``, so pynndescent compiles
  nothing, and umap-learn's own kernels get numba's on-disk cache switched on
  (``NUMBA_CACHE_DIR``, set to ``$AVLAB_CACHE/numba`` before umap is imported), so only a
  machine's first layout compiles them. Exact instead of pynndescent's approximate neighbours
  changes the picture little: on a trained run's embeddings the quality scores stay within their
  seed-to-seed spread, on a noisy synthetic set they drop by 0.01-0.02 (trustworthiness, 2-D
  neighbours of the same identity);
* layouts are cached per run and parameters (``<run>/umap/<key>.csv``, :func:`layout_cache_path`):
  re-opening a view costs milliseconds.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import warnings
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pandas as pd

COLOR_FIELDS = ("identity", "cluster", "gender", "modality", "split", "age", "size")
SYMBOLS = {"voice": "circle", "face": "square", "voice prototype": "x", "face prototype": "diamond"}
UMAP_MODULES = ("umap.umap_", "umap.layouts", "umap.utils", "umap.spectral", "umap.distances")


def _numba_cache() -> None:
    """Compiled numba kernels go to ``$AVLAB_CACHE/numba`` (unless ``NUMBA_CACHE_DIR`` says otherwise)."""
    if "NUMBA_CACHE_DIR" not in os.environ:
        from avlab.data.voxceleb import cache_dir

        os.environ["NUMBA_CACHE_DIR"] = str(cache_dir() / "numba")
    if "numba" in sys.modules:  # numba read its config at import: tell it too
        sys.modules["numba"].config.CACHE_DIR = os.environ["NUMBA_CACHE_DIR"]


def _cache_umap_kernels() -> int:
    """Switch numba's on-disk cache on for umap-learn's own jitted functions (they are not
    ``cache=True``); numba keys each entry by the source file's timestamp, so an upgrade recompiles.
    Returns how many were switched on (0 if numba's internals moved: only the speed-up is lost)."""
    import importlib

    try:
        from numba.core.caching import NullCache
        from numba.core.dispatcher import Dispatcher
    except ImportError:  # pragma: no cover
        return 0
    n = 0
    for name in UMAP_MODULES:
        for f in vars(importlib.import_module(name)).values():
            if isinstance(f, Dispatcher) and isinstance(getattr(f, "_cache", None), NullCache):
                f.enable_caching()
                n += 1
    return n


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


def layout_cache_path(run: str | Path, max_points: int = 5000, seed: int = 0, n_neighbors: int = 15,
                      min_dist: float = 0.1) -> Path:
    """Where :func:`umap_layout` keeps a run's layout: keyed by the parameters and the embeddings'
    modification time (re-evaluating the run invalidates it)."""
    run = Path(run)
    stamp = (run / "embeddings.npz").stat().st_mtime_ns
    key = hashlib.sha1(json.dumps([max_points, seed, n_neighbors, min_dist, stamp]).encode()).hexdigest()[:12]
    return run / "umap" / f"{key}.csv"


def umap_layout(run: str | Path, max_points: int = 5000, seed: int = 0, n_neighbors: int = 15,
                min_dist: float = 0.1, use_cache: bool = True) -> pd.DataFrame:
    """The points of :func:`umap_points` with 2-D UMAP coordinates ``x``, ``y`` (cached per run)."""
    cache = layout_cache_path(run, max_points, seed, n_neighbors, min_dist)
    if use_cache and cache.exists():
        return _read_layout(cache)
    points, vectors = umap_points(run, max_points, seed)
    return _umap_and_cache(points, vectors, cache, n_neighbors, min_dist, seed)


def first_view(run: str | Path, max_points: int = 5000, seed: int = 0, n_neighbors: int = 15,
               min_dist: float = 0.1) -> tuple[pd.DataFrame, Future]:
    """Points to show at once, and a future of their UMAP layout (:func:`umap_layout`'s frame).

    With the run's layout cached, both are it (the future is done). Otherwise the points carry a
    PCA layout (``points.attrs["layout"] == "pca"``) and the UMAP is computed, and cached, in a
    background thread; ``future.result()`` waits for it and raises what it raised.
    """
    done: Future = Future()
    cache = layout_cache_path(run, max_points, seed, n_neighbors, min_dist)
    if cache.exists():
        done.set_result(_read_layout(cache))
        return done.result(), done
    points, vectors = umap_points(run, max_points, seed)
    xy = pca_2d(vectors)
    preview = points.assign(x=xy[:, 0], y=xy[:, 1])
    preview.attrs["layout"] = "pca"

    def work():
        try:
            done.set_result(_umap_and_cache(points, vectors, cache, n_neighbors, min_dist, seed))
        except BaseException as e:  # noqa: BLE001 - handed to whoever waits on the future
            done.set_exception(e)

    threading.Thread(target=work, name="umap-layout", daemon=True).start()
    return preview, done


def _read_layout(cache: Path) -> pd.DataFrame:
    points = pd.read_csv(cache, keep_default_na=False)
    points.attrs["layout"] = "umap"
    return points


def _umap_and_cache(points: pd.DataFrame, vectors: np.ndarray, cache: Path, n_neighbors: int, min_dist: float,
                    seed: int) -> pd.DataFrame:
    xy = layout_2d(vectors, n_neighbors, min_dist, seed)
    points = points.assign(x=xy[:, 0], y=xy[:, 1])
    cache.parent.mkdir(exist_ok=True)
    points.to_csv(cache, index=False)
    points.attrs["layout"] = "umap"
    return points


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """The first two principal components of the L2-normalised vectors (the preview layout)."""
    x = vectors / (np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-12)
    x = x - x.mean(0)
    _, basis = np.linalg.eigh(x.T @ x)  # ascending eigenvalues
    return (x @ basis[:, ::-1][:, :2]).astype(np.float32)


def knn_cosine(vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``k`` nearest neighbours by cosine distance, each row's own point included (first,
    at distance 0, unless it has duplicates): indices (int64) and distances (float32)."""
    import faiss

    x = np.ascontiguousarray(vectors / (np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-12), dtype=np.float32)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    sims, idx = index.search(x, k)
    return idx.astype(np.int64), np.clip(1 - sims, 0, 2).astype(np.float32)


def layout_2d(vectors: np.ndarray, n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0) -> np.ndarray:
    """UMAP (cosine) of ``vectors`` to 2-D, from their exact k-NN (see the module docstring)."""
    _numba_cache()
    import umap

    _cache_umap_kernels()
    k = min(n_neighbors, len(vectors) - 1)
    idx, dist = knn_cosine(vectors, k)
    reducer = umap.UMAP(n_neighbors=k, min_dist=min_dist, metric="cosine", random_state=seed, n_jobs=1,
                        precomputed_knn=(idx, dist, None))
    with warnings.catch_warnings():  # no NNDescent index: transform() of new points is unavailable, unused here
        warnings.filterwarnings("ignore", message=".*knn_search_index.*")
        warnings.filterwarnings("ignore", message=".*n_jobs value 1 overridden.*")
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
    preview = " · PCA preview, UMAP computing…" if points.attrs.get("layout") == "pca" else ""
    fig.update_layout(height=560, legend=dict(font=dict(size=9)), margin=dict(l=10, r=10, t=30, b=10),
                      title=f"voices ● and faces ■ coloured by {color_by}{preview}")
    return fig


def move_points(fig, points: pd.DataFrame, color_by: str = "identity", line_identity: str | None = None) -> bool:
    """Move the points of ``fig`` (a :func:`umap_figure` of the same rows, e.g. a FigureWidget of the
    preview) to the layout of ``points`` in place; False (``fig`` untouched) if its traces differ."""
    new = umap_figure(points, color_by, line_identity)
    if [t.name for t in fig.data] != [t.name for t in new.data]:
        return False
    with fig.batch_update():
        for trace, src in zip(fig.data, new.data):
            trace.x, trace.y = src.x, src.y
    # after the batch, not inside it: plotly applies a batch's layout edits before its trace edits,
    # so a title that no longer says "preview" would otherwise be seen while the points still had not moved
    fig.layout.title.text = new.layout.title.text
    return True


def _hover(part: pd.DataFrame) -> list[str]:
    return [f"{m} · {p}<br>{i} · {s}" for m, p, i, s in zip(part.modality, part.path, part.identity, part.split)]


def umap_explorer(points: pd.DataFrame, data_root: str | Path, pending: Future | None = None):
    """Widgets: colour selector, identity line selector, the figure, the hovered face, the selection.

    ``pending`` (the future of :func:`first_view`): when it is done, the figure's points move to its
    layout in place (from the background thread) and later redraws use it.
    """
    import ipywidgets as w

    from avlab.viz.clusters import thumbnail_png

    fields = [c for c in COLOR_FIELDS if c in points]
    colour = w.Dropdown(options=fields, value="identity", description="colour by")
    ids = sorted(points.identity[points.identity != "-"].unique())
    line = w.Dropdown(options=["(none)"] + ids, description="join")
    thumb = w.Image(format="png", width=96, height=96)
    selected = w.HTML(layout={"max_height": "220px", "overflow": "auto"})  # not Output: see cluster_browser
    box = w.VBox()
    state = {"points": points, "fig": None}
    lock = threading.Lock()

    def on_hover(trace, state_, _):
        if state_.point_inds and trace.customdata is not None:
            path = trace.customdata[state_.point_inds[0]]
            if path:
                thumb.value = thumbnail_png(data_root, path)

    def on_select(trace, state_, _):
        if state_.point_inds and trace.customdata is not None:
            pts = state["points"]
            rows = pts[pts.path.isin([trace.customdata[i] for i in state_.point_inds])]
            selected.value = rows[["modality", "path", "identity", "split"]].to_html(index=False)

    def joined():
        return None if line.value == "(none)" else line.value

    def redraw(change=None):
        with lock:
            fig = umap_figure(state["points"], colour.value, joined(), widget=True)
            state["fig"] = fig
        for trace in fig.data:
            trace.on_hover(on_hover)
            trace.on_selection(on_select)
        box.children = [w.HBox([colour, line]), w.HBox([fig, w.VBox([w.Label("hovered face"), thumb])]),
                        w.Label("selection (box/lasso)"), selected]

    def on_layout(future: Future):
        if future.cancelled() or future.exception() is not None or future.result() is state["points"]:
            return  # a failed layout is raised where the notebook waits on the future
        with lock:
            state["points"] = future.result()
            moved = move_points(state["fig"], state["points"], colour.value, joined())
        if not moved:
            redraw()

    colour.observe(redraw, names="value")
    line.observe(redraw, names="value")
    redraw()
    if pending is not None:
        pending.add_done_callback(on_layout)
    return box
