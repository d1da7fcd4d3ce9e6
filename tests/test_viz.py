"""Viz functions the notebooks call, tested without a browser."""
import json
import time

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, roc_auc_score

from avlab.eval.clusters import purity
from avlab.viz import clusters as vc
from avlab.viz import evaluate, umap_view
from avlab.viz.sweep import sweep_figure


def test_purity_brute_force():
    rng = np.random.default_rng(0)
    labels, clusters = rng.integers(0, 5, 200), rng.integers(0, 7, 200)
    expected = sum(max(np.sum((clusters == c) & (labels == l)) for l in range(5)) for c in range(7)) / 200
    assert purity(labels, clusters) == pytest.approx(expected)


def test_cluster_views_of_a_cmpc_run(tiny_cmpc_run):
    rc = vc.load_run_clusters(tiny_cmpc_run)
    sizes = vc.cluster_table(rc, 1)
    assert sizes.groupby("modality")["size"].sum().tolist() == [len(rc.clips)] * 2
    assert len(sizes[sizes.modality == "face"]) == 5
    scores = vc.cluster_metrics(rc)
    row = scores[(scores.modality == "face") & (scores.granularity == 0) & (scores.against == "identity")].iloc[0]
    assign = rc.face.assign[0].numpy()
    assert row.nmi == pytest.approx(normalized_mutual_info_score(rc.clips.identity, assign))
    assert row.ari == pytest.approx(adjusted_rand_score(rc.clips.identity, assign))
    assert set(scores.against) == {"identity", "gender", "age (quartile)", "size (quartile)"}
    agree = vc.agreement(rc, 0)
    assert agree["contingency"].to_numpy().sum() == len(rc.clips)
    low = vc.downweighted(rc, 3)
    assert len(low) == 3 and low.weight.is_monotonic_increasing and ((low.weight >= 0) & (low.weight <= 1)).all()
    html = vc.gallery_html(rc.data, low, extra=("weight",))
    assert html.count("<img") == 3 and html.count("<audio") == 3
    box = vc.cluster_browser(rc, "face", 0)
    assert len(box.children) == 2


def fake_points(n_ids=3, per_id=2):
    rows = []
    for i in range(n_ids):
        for k in range(per_id):
            for m, dx in (("voice", 0.0), ("face", 0.5)):
                rows.append({"path": f"p{i}_{k}", "identity": f"id{i}", "split": "train", "modality": m,
                             "cluster": f"{m[0]}{i}", "gender": "m" if i % 2 else "f", "age": i / 3,
                             "x": i + dx, "y": k})
    rows.append({"path": "", "identity": "-", "split": "prototype", "modality": "face prototype", "cluster": "f0",
                 "gender": "", "age": np.nan, "x": 0, "y": 0})
    return pd.DataFrame(rows)


def test_umap_figure_traces_colours_hover_and_lines():
    pts = fake_points()
    fig = umap_view.umap_figure(pts, "identity", line_identity="id1")
    names = [t.name for t in fig.data]
    assert names == ["id0", "id1", "id2", "face prototype", "id1: voice—face"]
    colours = [t.marker.color for t in fig.data[:3]]
    assert len(set(colours)) == 3
    assert all("p" in h and "id" in h for h in fig.data[0].hovertext)
    assert list(fig.data[0].customdata) == ["p0_0", "p0_0", "p0_1", "p0_1"]
    assert fig.data[-1].x.count(None) == 2  # two voice-face segments for id1
    assert [t.name for t in umap_view.umap_figure(pts, "modality").data][:2] == ["face", "voice"]
    assert len(umap_view.umap_figure(pts, "age").data) == 3  # continuous: one trace per modality + prototypes
    with pytest.raises(ValueError, match="cannot colour by"):
        umap_view.umap_figure(pts, "nonsense")


def test_umap_points_include_prototypes_and_subsample(tiny_cmpc_run):
    pts, vec = umap_view.umap_points(tiny_cmpc_run, max_points=20)
    assert len(pts) == len(vec) and (pts.modality == "voice").sum() == 10
    assert (pts.modality == "face prototype").sum() == 5 and (pts.modality == "voice prototype").sum() == 5


def test_umap_explorer_builds_widgets():
    box = umap_view.umap_explorer(fake_points(), data_root=".")
    controls, body = box.children[0], box.children[1]
    assert [c.description for c in controls.children] == ["colour by", "join"]
    assert isinstance(body.children[0], go.FigureWidget)



def umap_run(tiny_cmpc_run, tmp_path):
    """A copy of the shared run without its layout cache (the notebook test relies on its own)."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_cmpc_run, run, ignore=shutil.ignore_patterns("tb", "umap"))
    return run


def test_first_view_shows_pca_at_once_then_the_umap_replaces_it(tiny_cmpc_run, tmp_path, monkeypatch):
    import threading

    run = umap_run(tiny_cmpc_run, tmp_path)
    release, calls = threading.Event(), []

    def slow_layout(vectors, n_neighbors, min_dist, seed):
        calls.append(len(vectors))
        assert release.wait(30)
        return np.stack([np.arange(len(vectors)), -np.arange(len(vectors))], 1).astype(np.float32)

    monkeypatch.setattr(umap_view, "layout_2d", slow_layout)
    preview, future = umap_view.first_view(run, max_points=40)
    points, vectors = umap_view.umap_points(run, max_points=40)
    assert not future.done() and preview.attrs["layout"] == "pca"  # returned while the UMAP still runs
    assert len(preview) == len(points) and np.isfinite(preview[["x", "y"]].to_numpy()).all()
    assert preview[points.columns].equals(points)
    np.testing.assert_allclose(preview[["x", "y"]], umap_view.pca_2d(vectors), rtol=1e-5)
    assert "PCA preview" in umap_view.umap_figure(preview).layout.title.text

    box = umap_view.umap_explorer(preview, data_root=".", pending=future)
    fig = box.children[1].children[0]
    before = np.concatenate([t.x for t in fig.data])
    release.set()
    final = future.result(timeout=30)
    assert calls == [len(points)] and final.attrs["layout"] == "umap"
    for _ in range(100):  # the explorer's callback runs in the layout's thread, just after result() returns
        if "PCA" not in fig.layout.title.text:
            break
        time.sleep(0.05)
    assert final.x.tolist() == list(range(len(points))) and final[points.columns].equals(points)
    assert box.children[1].children[0] is fig  # moved in place, not redrawn
    after = np.concatenate([t.x for t in fig.data])
    assert sorted(after) == sorted(final.x) and not np.allclose(np.sort(before), np.sort(after))
    assert "PCA" not in fig.layout.title.text
    box.children[0].children[0].value = "modality"  # a redraw after the swap uses the UMAP layout
    assert sorted(np.concatenate([t.x for t in box.children[1].children[0].data])) == sorted(final.x)

    # cached: the next view is the UMAP at once, from <run>/umap/<key>.csv, nothing recomputed
    assert umap_view.layout_cache_path(run, max_points=40).exists()
    again, done = umap_view.first_view(run, max_points=40)
    assert done.done() and done.result() is again and again.attrs["layout"] == "umap"
    np.testing.assert_allclose(again[["x", "y"]], final[["x", "y"]])
    assert umap_view.umap_layout(run, max_points=40).x.tolist() == final.x.tolist() and len(calls) == 1


def test_first_view_hands_a_failed_layout_to_whoever_waits(tiny_cmpc_run, tmp_path, monkeypatch):
    run = umap_run(tiny_cmpc_run, tmp_path)

    def broken(*args):
        raise RuntimeError("no umap today")

    monkeypatch.setattr(umap_view, "layout_2d", broken)
    preview, future = umap_view.first_view(run, max_points=40)
    box = umap_view.umap_explorer(preview, data_root=".", pending=future)
    with pytest.raises(RuntimeError, match="no umap today"):
        future.result(timeout=30)
    assert "PCA preview" in box.children[1].children[0].layout.title.text  # the preview stays
    assert not umap_view.layout_cache_path(run, max_points=40).exists()


def test_layout_cache_keys(tiny_cmpc_run, tmp_path):
    import os

    run = umap_run(tiny_cmpc_run, tmp_path)
    key = umap_view.layout_cache_path
    assert key(run, 5000) == key(run, 5000) and key(run, 5000).parent == run / "umap"
    assert len({key(run, 5000), key(run, 4000), key(run, 5000, seed=1), key(run, 5000, n_neighbors=30),
                key(run, 5000, min_dist=0.2)}) == 5
    before = key(run, 5000)
    st = (run / "embeddings.npz").stat()
    os.utime(run / "embeddings.npz", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # re-evaluated run
    assert key(run, 5000) != before


def test_exact_cosine_knn_and_pca_preview():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 16)).astype(np.float32) * rng.uniform(0.5, 2, (300, 1)).astype(np.float32)
    idx, dist = umap_view.knn_cosine(x, 5)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    brute = 1 - unit @ unit.T
    assert idx.shape == dist.shape == (300, 5) and idx.dtype == np.int64 and dist.dtype == np.float32
    assert (idx[:, 0] == np.arange(300)).all() and np.allclose(dist[:, 0], 0, atol=1e-5)
    np.testing.assert_array_equal(np.sort(idx, 1), np.sort(np.argsort(brute, 1)[:, :5], 1))
    np.testing.assert_allclose(dist, np.sort(brute, 1)[:, :5], atol=1e-5)
    xy = umap_view.pca_2d(x)
    assert xy.shape == (300, 2) and np.allclose(xy.mean(0), 0, atol=1e-5)
    assert xy[:, 0].var() >= xy[:, 1].var() and abs(np.corrcoef(xy.T)[0, 1]) < 1e-3


def test_move_points_refuses_other_traces():
    pts = fake_points()
    fig = umap_view.umap_figure(pts, "identity", widget=True)
    assert umap_view.move_points(fig, pts.assign(x=pts.x * 2), "identity")
    assert list(fig.data[0].x) == list(pts[pts.identity == "id0"].x * 2)
    assert not umap_view.move_points(fig, pts, "modality")  # other traces: the caller redraws


@pytest.mark.slow
def test_umap_layout_uses_exact_knn_and_caches_umaps_kernels(monkeypatch):
    import os
    from pathlib import Path

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16))
    x = (np.repeat(centres, 60, 0) + rng.normal(size=(240, 16)) * 0.3).astype(np.float32)
    knn, used = umap_view.knn_cosine, []
    monkeypatch.setattr(umap_view, "knn_cosine", lambda v, k: used.append(k) or knn(v, k))
    xy = umap_view.layout_2d(x, n_neighbors=10)
    assert used == [10]  # the exact k-NN, not pynndescent
    assert xy.shape == (240, 2) and np.isfinite(xy).all()
    from sklearn.neighbors import NearestNeighbors

    nb = NearestNeighbors(n_neighbors=6).fit(xy).kneighbors(xy)[1][:, 1:]
    labels = np.repeat(np.arange(4), 60)
    assert (labels[nb] == labels[:, None]).mean() > 0.95  # the four blobs stay apart
    import umap.umap_

    assert type(umap.umap_.smooth_knn_dist._cache).__name__ != "NullCache"  # on-disk cache switched on
    assert list(Path(os.environ["NUMBA_CACHE_DIR"]).rglob("umap_.smooth_knn_dist*.nbi"))


def test_roc_scores_reproduce_the_saved_auc(tiny_cmpc_run):
    s, y = evaluate.verification_scores(tiny_cmpc_run, "unseen_unheard", "random")
    saved = json.loads((tiny_cmpc_run / "eval.json").read_text())
    assert roc_auc_score(y, s) == pytest.approx(saved["metrics"]["unseen_unheard"]["verification"]["U"]["auc"])
    p, r, base = evaluate.retrieval_pr(tiny_cmpc_run)
    assert p[-1] == 1.0 and r[0] == 1.0 and 0 < base < 1


def test_sweep_figure_marks_failures():
    table = pd.DataFrame({"run": ["a", "b"], "status": ["ok", "failed"], "method": ["cid", "cmpc"],
                          "matching_1to2/v2f/U": [0.6, np.nan]})
    fig = sweep_figure(table, "matching_1to2/v2f/U", "method")
    assert any("failed" in t.get_text() for t in fig.axes[0].texts)


# --- inline media, interactive figures ---------------------------------------------------------------
def _payload(markup: str) -> bytes:
    import base64

    return base64.b64decode(markup.split("base64,")[-1].split('"')[0])


def _first_clip(root):
    return pd.read_csv(root / "meta.csv").path.iloc[0]


def test_media_html_embeds_decodable_images_sound_and_video(tiny_set):
    import io

    import av
    import cv2
    import soundfile as sf

    from avlab.viz import media

    img = media.img_html(np.full((10, 20, 3), 200, np.uint8), width=40)
    assert img.startswith("<img") and cv2.imdecode(np.frombuffer(_payload(img), np.uint8), 1).shape == (10, 20, 3)
    wav = media.audio_html(np.zeros(1600, np.float32))
    assert "<audio controls" in wav and sf.read(io.BytesIO(_payload(wav)))[0].shape == (1600,)
    clip = _first_clip(tiny_set)
    voice = media.clip_audio_html(tiny_set, clip, max_seconds=1.0)
    with av.open(io.BytesIO(_payload(voice))) as c:  # the clip's own AAC, cut, no video
        assert [s.type for s in c.streams] == ["audio"] and c.duration / 1e6 <= 1.2
    video = media.video_html(tiny_set / clip, max_bytes=0, max_seconds=1.0)  # forced to trim
    assert "<video controls" in video and 'poster="data:image/png;base64,' in video
    with av.open(io.BytesIO(_payload(video))) as c:
        assert {s.type for s in c.streams} == {"video", "audio"} and c.duration / 1e6 <= 1.2
    full = media.video_html(tiny_set / clip, poster=False)
    assert _payload(full) == (tiny_set / clip).read_bytes()  # small clips travel as they are


def test_data_tour_media_and_readable_labels(tiny_set):
    from avlab.viz import data_tour as tour

    meta = tour.load_meta(tiny_set)
    speakers = tour.speakers_html(tiny_set, meta, 4)
    assert speakers.count("<img") == 4 and speakers.count("<audio") == 4
    assert "female" in speakers and "male" in speakers  # alternating genders, spelled out
    assert tour.clips_html(tiny_set, meta, 2).count("<video") == 2
    fig = tour.attribute_figure(meta)
    assert {t.get_text() for t in fig.axes[0].get_xticklabels()} == {"female", "male"}


def test_metric_labels_are_readable():
    from avlab.viz.report import metric_label

    assert metric_label("matching_1to2/v2f/U") == "1:2 matching · voice→face · U"
    assert metric_label("verification/G/auc") == "verification · G (same gender) · AUC"
    assert metric_label("retrieval_map/f2v") == "retrieval mAP · face→voice"


def test_comparison_plot_has_intervals_chance_and_oracle(tiny_cmpc_run):
    from avlab.eval.tree import flatten
    from avlab.viz import report

    saved = json.loads((tiny_cmpc_run / "eval.json").read_text())
    fig = report.comparison_plot([tiny_cmpc_run])
    assert [t.name for t in fig.data] == ["cmpc", "chance", "oracle"]
    bars = fig.data[0]
    keys = [m for m in report.task_of(saved).key_metrics if not m.endswith("eer")]
    assert list(bars.x) == [report.metric_label(m) for m in keys]
    value, ci = flatten(saved["metrics"]["unseen_unheard"]), flatten(saved["ci"]["unseen_unheard"])
    m = keys[0]
    assert bars.y[0] == pytest.approx(value[m])
    assert bars.error_y.array[0] == pytest.approx(ci[m][1] - value[m])
    assert bars.error_y.arrayminus[0] == pytest.approx(value[m] - ci[m][0])
    assert "cmpc" in bars.hovertemplate and "95 % CI" in bars.hovertemplate
    assert fig.data[1].y[0] == pytest.approx(flatten(saved["chance"]["unseen_unheard"])[m])


def test_curves_overlay_runs_with_hover(tiny_cmpc_run, tmp_path):
    import shutil

    from avlab.viz import report

    other = tmp_path / "again" / "cmpc"  # same folder name: told apart by the parent
    shutil.copytree(tiny_cmpc_run, other, ignore=shutil.ignore_patterns("tb", "umap"))
    runs = [tiny_cmpc_run, other]
    names = report.run_names(runs)
    assert names[1] == "again/cmpc" and len(set(names)) == 2
    loss = report.loss_plot(runs)
    assert {t.legendgroup for t in loss.data} == set(names)
    assert all(t.name.split(" · ")[0] in t.hovertemplate for t in loss.data)
    curve = report.matching_curve_plot(runs)
    assert {t.name for t in curve.data} >= set(names) | {"chance", "oracle"}
    roc, pr = evaluate.roc_plot(runs), evaluate.pr_plot(runs)
    assert all(len(t.x) <= 400 for t in roc.data + pr.data)


def test_ranking_examples_show_faces_and_play_voices(tiny_cmpc_run):
    v2f = evaluate.ranking_examples(tiny_cmpc_run, n_queries=2, top_k=3, direction="v2f")
    assert v2f.count("<audio") == 2 and v2f.count("<img") == 2 * 3
    assert v2f.count("✓") + v2f.count("✗") == 2 * 3 + 1  # + the legend's ✓
    f2v = evaluate.ranking_examples(tiny_cmpc_run, n_queries=2, top_k=3, direction="f2v")
    assert f2v.count("<img") == 2 and f2v.count("<audio") == 2 * 3


def test_show_displays_a_png_and_writes_the_file(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from avlab.viz import display

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, **kw: shown.append(obj))
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    display.show(fig, tmp_path / "a.png")
    assert (tmp_path / "a.png").stat().st_size > 1000
    assert shown and shown[0].data[:8] == b"\x89PNG\r\n\x1a\n"
    assert fig.number not in plt.get_fignums()  # closed: the inline backend will not show it a second time


def test_offline_plotly_renderer_leaves_out_js_and_cdn(monkeypatch):
    import plotly.io as pio

    from avlab.viz import display

    monkeypatch.setattr(display, "_activated", True)  # outside a kernel the JS would go to stdout
    display.setup()
    assert pio.renderers.default == f"plotly_mimetype+{display.RENDERER}"
    bundle = pio.renderers[display.RENDERER].to_mimebundle(go.Figure(go.Bar(y=[1])).to_dict())
    markup = bundle["text/html"]
    assert "plotly-graph-div" in markup and "<script src=" not in markup and len(markup) < 20_000
