"""Lip-reading views: the helpers of avlab.viz.lipreading against hand-worked cases and brute force,
notebook 07 on an evaluated ADC-SSL run and the data tour on a lip-words set, each executed by
papermill with what they write and show checked (in the notebook and in its HTML export)."""
import json

import numpy as np
import pandas as pd
import pytest

from avlab.notebooks import execute
from avlab.viz import lipreading as lip
from test_notebooks import assert_figures_shown

HOMOPHENES = [["PAT", "BAT", "MAT"], ["FAN", "VAN"]]


def test_homophene_groups_put_each_group_together_then_the_other_words():
    groups = lip.homophene_groups(["ZOO", "VAN", "PAT", "ABOUT", "FAN", "BAT"], HOMOPHENES + [["SUE", "ZOO"]])
    # MAT is not among the words; ZOO's partner is absent, so it stands alone
    assert groups == [["PAT", "BAT"], ["FAN", "VAN"], ["ABOUT"], ["ZOO"]]
    assert lip.homophene_groups(["B", "A"]) == [["A"], ["B"]]  # no latents (real LRW): alphabetical


def test_confusion_table_and_homophene_errors_on_a_hand_worked_case():
    groups = lip.homophene_groups(["PAT", "BAT", "FAN", "VAN", "ABOUT"], HOMOPHENES)
    truth = ["PAT", "PAT", "PAT", "BAT", "FAN", "FAN", "VAN", "ABOUT", "ABOUT"]
    predicted = ["PAT", "BAT", "ABOUT", "BAT", "VAN", "FAN", "PAT", "ABOUT", "FAN"]
    table = lip.confusion_table(truth, predicted, groups)
    assert list(table.index) == list(table.columns) == ["PAT", "BAT", "FAN", "VAN", "ABOUT"]
    expected = [[1, 1, 0, 0, 1],   # PAT: right once, BAT (homophene), ABOUT
                [0, 1, 0, 0, 0],   # BAT
                [0, 0, 1, 1, 0],   # FAN: right once, VAN (homophene)
                [1, 0, 0, 0, 0],   # VAN → PAT
                [0, 0, 1, 0, 1]]   # ABOUT: right once, FAN
    assert table.to_numpy().tolist() == expected
    stats = lip.homophene_errors(table, groups)
    assert (stats["clips"], stats["errors"], stats["within_group"]) == (9, 5, 2)
    assert stats["share"] == pytest.approx(2 / 5)
    # uniform errors: a wrong answer hits the one homophene among the 4 other words w.p. 1/4 for
    # PAT (2 errors), FAN and VAN (1 each), never for ABOUT (1 error): (2 + 1 + 1) / 4 / 5
    assert stats["uniform_share"] == pytest.approx(1 / 5)


def test_per_speaker_accuracy_matches_a_loop():
    rng = np.random.default_rng(0)
    clips = pd.DataFrame({"speaker": rng.choice(["s1", "s2", "s3", "s4", ""], 60),
                          "correct": rng.random(60) < 0.4})
    table = lip.per_speaker_accuracy(clips).set_index("speaker")
    assert "" not in table.index and list(table.accuracy) == sorted(table.accuracy)
    for speaker in ("s1", "s2", "s3", "s4"):
        rows = [c for s, c in zip(clips.speaker, clips.correct) if s == speaker]
        assert table.clips[speaker] == len(rows) and table.correct[speaker] == sum(rows)
        assert table.accuracy[speaker] == pytest.approx(sum(rows) / len(rows))
        assert table.ci_low[speaker] <= table.accuracy[speaker] <= table.ci_high[speaker]
    low, high = lip.wilson_interval([0], [5])
    assert low[0] == pytest.approx(0, abs=1e-12) and high[0] == pytest.approx(1.96**2 / (5 + 1.96**2))


def test_neighbour_agreement_sees_clusters_and_knows_its_chance():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(4, 16)) * 10
    labels = np.repeat(np.arange(4), 6)
    vectors = (centres[labels] + rng.normal(size=(24, 16))).astype(np.float32)
    agree, chance = lip.neighbour_agreement(vectors, labels, k=3)
    assert agree == 1.0 and chance == pytest.approx(4 * 6 * 5 / (24 * 23))
    shuffled, _ = lip.neighbour_agreement(vectors, rng.permutation(labels), k=3)
    assert shuffled < 0.6


def _fake_run(folder, method, epochs=1, **method_args):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"method": method, "epochs": epochs, "method_args": method_args}))
    (folder / "eval.json").write_text(json.dumps({
        "words": ["A", "B", "C", "D"],
        "metrics": {"test": {"frozen": {"top1": 0.5}, "identity_leakage": {"speaker_acc": 0.2, "chance": 0.1}}}}))
    return folder


def test_runs_resolve_from_run_folders_and_folders_of_runs(tmp_path):
    single = _fake_run(tmp_path / "single", "adc-ssl")
    bench = tmp_path / "bench"
    _fake_run(bench / "b-long-only", "adc-ssl", long=False, short=True)
    _fake_run(bench / "a-rand", "adc-ssl", epochs=0)
    runs = lip.resolve_runs([single, bench])
    assert [r.name for r in runs] == ["single", "a-rand", "b-long-only"]
    table = lip.leakage_table(runs)
    assert list(table.label) == ["adc-ssl", "adc-ssl · random init", "adc-ssl (long=False, short=True)"]
    assert table.top1_chance.tolist() == [0.25] * 3 and table.speaker_acc.tolist() == [0.2] * 3
    with pytest.raises(FileNotFoundError, match="neither an evaluated run"):
        lip.resolve_runs([tmp_path / "nothing"])


def test_the_lipreading_task_lists_its_notebook():
    from avlab.notebooks import notebook_path
    from avlab.registry import TASKS

    assert all(notebook_path(n).exists() for n in TASKS.get("lip-reading").notebooks)


def test_lipreading_notebook_shows_and_writes_its_views(tiny_adc_run, tmp_path):
    out = tmp_path / "lip"
    # the run itself and its parent folder (a folder of runs): two runs with one label, pooled
    execute("07_lipreading", out, {"run": str(tiny_adc_run), "ablations": [str(tiny_adc_run), str(tiny_adc_run.parent)],
                                   "out_dir": str(out), "max_points": 40, "n_neighbors": 5, "k": 3}, progress=False)
    shown = assert_figures_shown(out / "07_lipreading.ipynb")
    assert shown["plotly"] == 2 and shown["png"] == 3  # confusions, UMAP; per speaker, leakage, adversary
    for name in ("confusion.png", "per_speaker.png", "leakage.png", "umap.png", "adversary.png"):
        assert (out / name).stat().st_size > 5000, name
    npz = np.load(tiny_adc_run / "lipreading.npz")
    n = len(npz["label"])
    confusion = pd.read_csv(out / "confusion.csv", index_col=0)
    assert confusion.to_numpy().sum() == n and list(confusion.index[:4]) == ["PAT", "BAT", "FAN", "VAN"]
    assert np.trace(confusion.to_numpy()) == (npz["logits"].argmax(1) == npz["label"]).sum()
    assert pd.read_csv(out / "per_speaker.csv").clips.sum() == n
    leakage = pd.read_csv(out / "leakage.csv")
    assert len(leakage) == 2 and leakage.label.nunique() == 1
    scores = pd.read_csv(out / "cluster_scores.csv").set_index("by")
    assert set(scores.index) == {"word", "speaker"} and (scores.chance > 0).all()
    assert len(pd.read_csv(out / "umap_points.csv")) == n
    curves = pd.read_csv(out / "training_curves.csv")
    assert {"lambda", "id_acc", "mod_acc"} <= set(curves.columns) and len(curves) >= 2


def test_data_tour_covers_a_lip_words_set(tiny_lip_words, tmp_path):
    out = tmp_path / "tour"
    execute("00_data_tour", out, {"data_dir": str(tiny_lip_words), "out_dir": str(out), "n_words": 4,
                                  "n_speakers": 3, "n_videos": 2}, progress=False)
    shown = assert_figures_shown(out / "00_data_tour.ipynb")
    assert shown["png"] == 4 and shown["video"] == 2 and shown["audio"] == 3 and shown["img"] >= 3
    for name in ("mouth_strips.png", "mfcc_mouth.png", "lipsync.png", "words_speakers.png"):
        assert (out / name).stat().st_size > 5000, name
    assert not (out / "identity_grid.png").exists()  # the talking-faces views are not drawn
    homophenes = pd.read_csv(out / "homophenes.csv")
    assert set(homophenes.words[homophenes.n_words > 1]) == {"PAT / BAT", "FAN / VAN"}
    oracle = pd.read_csv(out / "oracle.csv").set_index("metric").oracle
    assert oracle["visual/top1"] == pytest.approx(4 / 6) and oracle["audio/top1"] == 1.0
    assert pd.read_csv(out / "lipsync.csv").r.mean() > 0.2


def test_evaluate_notebook_reports_a_lip_reading_run(tiny_adc_run, tmp_path):
    """05_evaluate on a lip-reading run: its splits beside chance and the oracle, and the
    confusions by homophene group; the voice-face views are left out, not failed."""
    out = tmp_path / "evaluate"
    execute("05_evaluate", out, {"runs": [str(tiny_adc_run)], "out_dir": str(out)}, progress=False)
    assert assert_figures_shown(out / "05_evaluate.ipynb")["plotly"] >= 2
    table = pd.read_csv(out / "protocol_test.csv", index_col=0)
    assert "frozen/top1" in table.index and {"chance", "oracle"} <= set(table.columns)
    assert (out / f"confusion_{tiny_adc_run.name}.png").exists() and (out / "protocol_val.csv").exists()
    assert not (out / "roc.png").exists()
