"""Attention views of a sound-localisation run: the helpers of avlab.viz.attention against hand-worked
cases and the protocol's own per-clip numbers, the browser, and notebook 08 executed by papermill on
an evaluated CMAC run, with what it writes and shows checked (in the notebook and its HTML export)."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from avlab.eval import localisation as L
from avlab.notebooks import execute, html_figures
from avlab.viz import attention as att
from test_notebooks import assert_figures_shown

NAN_BOX = [np.nan] * 4


def test_ciou_table_on_hand_worked_maps():
    # maps at the frame's own resolution (8²), so resizing changes nothing and cIoU is countable
    inside = np.zeros((8, 8), np.float32)
    inside[2:6, 2:6] = 1  # exactly the box
    half = np.zeros((8, 8), np.float32)
    half[2:6, 4:8] = 1  # 16 pixels, 8 of them in the box: 8 / (16 + 8)
    flat = np.ones((8, 8), np.float32)  # predicts every pixel: box area / frame area
    maps = {"beta_v": np.stack([inside, half, flat, flat]), "alpha_v": np.stack([half, inside, inside, flat])}
    boxes = np.array([[2, 2, 6, 6], [2, 2, 6, 6], [2, 2, 6, 6], NAN_BOX], np.float32)
    table = att.ciou_table(maps, boxes, 8)
    assert list(table.columns) == ["ciou_alpha_v", "ciou_beta_v", "ciou_centre_prior"]
    assert table.ciou_beta_v[:3].tolist() == pytest.approx([1.0, 1 / 3, 16 / 64])
    assert table.ciou_alpha_v[:3].tolist() == pytest.approx([1 / 3, 1.0, 1.0])
    assert table.iloc[3].isna().all()  # the sound is off screen: no box, not scored
    prior = L.clip_ciou(L.centre_prior((8, 8)), [[2, 2, 6, 6]], (8, 8))
    assert table.ciou_centre_prior[:3].tolist() == pytest.approx([prior] * 3)


def test_ciou_table_agrees_with_the_localisation_metrics_on_random_maps():
    rng = np.random.default_rng(0)
    maps = {"beta_v": rng.random((6, 4, 4)).astype(np.float32)}
    boxes = np.array([[x, y, x + w, y + w] for x, y, w in rng.uniform([0, 0, 8], [30, 30, 30], (6, 3))], np.float32)
    for threshold in ("value", "median"):
        table = att.ciou_table(maps, boxes, 64, threshold)
        expected = [L.clip_ciou(maps["beta_v"][i], [boxes[i]], (64, 64), threshold) for i in range(6)]
        assert table.ciou_beta_v.tolist() == pytest.approx(expected)
    # a cid-like run records only β_v: no α_v column
    assert "ciou_alpha_v" not in att.ciou_table(maps, boxes, 64)


def test_band_table_and_band_rows_on_hand_worked_rows():
    edges = np.array([0.0, 100.0, 200.0, 300.0, 400.0])  # row centres 50, 150, 250, 350 Hz
    maps = {"alpha_a": np.array([[0.4, 0.4, 0.2, 0.0]] * 3), "beta_a": np.array([[0.1, 0.1, 0.4, 0.4]] * 3)}
    table = att.band_table(maps, [[[50, 150]], [[40, 60], [340, 360]], None], edges)
    assert table.mass_alpha_a[:2].tolist() == pytest.approx([0.8, 0.4])
    assert table.mass_beta_a[:2].tolist() == pytest.approx([0.2, 0.5])
    assert table.mass_uniform[:2].tolist() == pytest.approx([0.5, 0.5])
    assert table.iloc[2].isna().all()  # bands unknown (real data)
    assert att.band_rows([[150, 300], [0, 50]], edges) == [(1.5, 3.0), (0.0, 0.5)]


def _table():
    return pd.DataFrame({"file": list("abcdef"), "label": ["x", "x", "y", "y", "y", "x"],
                         "ciou_beta_v": [0.3, 0.1, 0.6, np.nan, 0.2, 0.8],
                         "ciou_centre_prior": [0.1, 0.2, 0.2, np.nan, 0.3, 0.1]})


def test_pick_clips_by_id_class_worst_and_best():
    table = _table()
    assert att.pick_clips(table, n=3) == ["b", "e", "a"]
    assert att.pick_clips(table, order="best", n=2) == ["f", "c"]
    assert att.pick_clips(table, label="y", n=5) == ["e", "c"]  # d has no box
    assert att.pick_clips(table, clips=["d", "a"]) == ["d", "a"]
    assert att.failures(table, n=2).index.tolist() == ["b", "e"]
    with pytest.raises(KeyError, match="not among"):
        att.pick_clips(table, clips=["zz"])
    with pytest.raises(KeyError, match="no evaluated clip of class"):
        att.pick_clips(table, label="w")
    with pytest.raises(KeyError, match="no alpha_v map"):
        att.pick_clips(table, map_name="alpha_v")
    assert att.clip_options(table, "y") == [("e · cIoU 0.20", "e"), ("c · cIoU 0.60", "c"), ("d · no box", "d")]


def test_class_summary_is_the_metrics_summary_per_class():
    table = _table()
    summary = att.class_summary(table).set_index(["label", "map"])
    for (label, name), row in summary.iterrows():
        values = table[table.label == label][f"ciou_{name}"].dropna()
        assert row.to_dict() == pytest.approx(L.summary(values))
    assert summary.loc[("y", "beta_v"), "n"] == 2


def test_the_localisation_task_lists_its_notebook():
    from avlab.notebooks import notebook_path
    from avlab.registry import TASKS

    assert TASKS.get("sound-localisation").notebooks == ("08_attention",)
    assert all(notebook_path(n).exists() for n in TASKS.get("sound-localisation").notebooks)


def test_clip_table_is_the_protocols_per_clip_ciou(tiny_cmac_run):
    from avlab.data.vggsound import key_frame
    from avlab.tasks.localisation.protocol import localisation

    ar = att.load_attention(tiny_cmac_run, workers=0)
    table = att.clip_table(ar)
    assert len(table) == len(ar.files) and set(ar.spatial) == {"alpha_v", "beta_v"}
    known = {i: [b.tolist()] for i, b in enumerate(ar.boxes) if not np.isnan(b).any()}
    _, _, _, per_clip = localisation(ar.maps, known, ar.image_size, n_boot=2, seed=0)
    for name in ar.spatial:
        assert table[f"ciou_{name}"].dropna().tolist() == pytest.approx(per_clip[name].tolist())
    assert table.mass_alpha_a.notna().all()  # a synthetic set: every clip's bands are known
    # the frame and log-mel come from the task's dataset at the run's settings
    file = table.file[next(iter(known))]
    assert ar.frame(file).shape == (64, 64, 3) and ar.log_mel(file).shape == (64, 101)
    # off the key frame the synthetic set's own box, scaled like the annotation (equal on the key frame)
    per_frame = np.load(ar.data / "latents" / "boxes.npz")[file]
    assert per_frame[key_frame(len(per_frame))] == pytest.approx(ar.box(file), abs=0.01)
    assert ar.box(file, 0) == pytest.approx(per_frame[att.key_frame_indices(len(per_frame))[0]].tolist())


def test_browser_follows_run_class_clip_and_frame(tiny_cmac_run):
    ar = att.load_attention(tiny_cmac_run, workers=0)
    browser = att.attention_browser([ar, ar])
    (run_pick, class_pick), (clip_pick, frame_pick), view = [*browser.children[0].children], \
        [*browser.children[1].children], browser.children[2]
    assert view.value.count("<img") == 2 and len(run_pick.options) == 2
    assert [v for _, v in class_pick.options][1:] == sorted(set(ar.labels))
    label = class_pick.options[2][1]
    class_pick.value = label
    assert {f for _, f in clip_pick.options} == set(ar.files[ar.labels == label])
    first = view.value
    frame_pick.value = 0
    assert view.value != first and view.value.count("<img") == 2
    run_pick.value = 1
    assert class_pick.value == label  # the class is kept across runs


def test_attention_notebook_shows_and_writes_its_views(tiny_cmac_run, tmp_path):
    # a second "checkpoint": the same run with β_v replaced by the true box on the map grid (the
    # oracle map), so the two runs differ and the run table must tell them apart
    other = tmp_path / "oracle-maps"
    other.mkdir()
    for name in ("config.json", "eval.json"):
        shutil.copy(tiny_cmac_run / name, other / name)
    npz = dict(np.load(tiny_cmac_run / "attention.npz"))
    size = int(npz["image_size"])
    npz["beta_v"] = np.stack([L.box_prior_map([b], (size, size), npz["beta_v"].shape[1:]) if not np.isnan(b).any()
                              else np.ones(npz["beta_v"].shape[1:]) for b in npz["boxes"]]).astype(np.float16)
    np.savez_compressed(other / "attention.npz", **npz)

    out = tmp_path / "att"
    execute("08_attention", out, {"runs": [str(tiny_cmac_run), str(other)], "out_dir": str(out), "n_clips": 2,
                                  "n_failures": 3, "order": "best"}, progress=False)
    shown = assert_figures_shown(out / "08_attention.ipynb")
    assert shown["png"] == 2 * 2 + 2  # overlays and spectrogram per clip, histograms, failures
    per_clip = pd.read_csv(out / "per_clip.csv")
    assert len(per_clip) == len(npz["files"])
    chosen = per_clip.dropna(subset=["ciou_beta_v"]).sort_values("ciou_beta_v", ascending=False, kind="stable")
    for file in chosen.file.head(2):
        for kind in ("overlay", "spectrogram"):
            assert (out / f"{kind}_{file}.png").stat().st_size > 5000, (kind, file)
    for name in ("ciou_per_class.png", "failures.png"):
        assert (out / name).stat().st_size > 5000, name
    failures = pd.read_csv(out / "failures.csv")
    assert len(failures) == 3 and failures.ciou_beta_v.is_monotonic_increasing
    assert failures.ciou_beta_v.max() <= per_clip.ciou_beta_v.nsmallest(3).max()
    runs = pd.read_csv(out / "runs.csv").set_index(["run", "map"]).mean_ciou
    result = json.loads((tiny_cmac_run / "eval.json").read_text())["metrics"]["test"]["localisation"]
    mine, oracle = att.run_label(tiny_cmac_run, {"method": "cmac"}), att.run_label(other, {"method": "cmac"})
    assert runs[(mine, "beta_v")] == pytest.approx(result["beta_v"]["mean_ciou"], abs=0.01)  # float16 maps
    assert runs[(oracle, "beta_v")] > max(0.5, runs[(mine, "beta_v")])
    assert runs[(oracle, "alpha_v")] == runs[(mine, "alpha_v")]
    classes = pd.read_csv(out / "per_class.csv")
    assert set(classes.label) <= set(npz["labels"]) and classes[classes["map"] == "beta_v"].n.sum() == \
        per_clip.ciou_beta_v.notna().sum()
    # the browser is live (a widget in the notebook), its static counterparts are in the export
    nb = json.loads((out / "08_attention.ipynb").read_text())
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
               for c in nb["cells"] for o in c.get("outputs", []))
    html = (out / "08_attention.html").read_text()
    assert html_figures(out / "08_attention.html")["img"] >= 6 and "a live widget" in html
