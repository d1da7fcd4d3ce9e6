"""Viz functions the notebooks call, tested without a browser."""
import json

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
