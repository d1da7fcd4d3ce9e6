"""The command line gives clear errors for bad input and generates sets."""
from pathlib import Path

import pytest

from avlab.cli import main as cli


def test_synth_rejects_bad_coupling_with_a_clear_message(tmp_path, capsys):
    assert cli(["synth", "talking-faces", "--out", str(tmp_path / "x"), "--coupling", "2", "--quiet"]) == 2
    assert "coupling must lie in [0, 1]" in capsys.readouterr().err


def test_scan_of_a_missing_folder_is_an_error_not_a_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli(["nonsense"])
    assert cli(["synth", "talking-faces", "--out", str(tmp_path / "y"), "--identities", "2", "--quiet"]) == 2
    assert "identities must be >= 8" in capsys.readouterr().err


def test_synth_writes_a_set(tmp_path):
    out = tmp_path / "set"
    assert cli(["synth", "talking-faces", "--out", str(out), "--identities", "8", "--videos-per-id", "1",
                "--utts-per-video", "2", "--size", "32", "--workers", "1", "--quiet"]) == 0
    assert (out / "oracle.json").exists() and (out / "lists" / "veriflist_test_G_unseenunheard.txt").exists()


def test_synth_lip_words_takes_its_own_flags_and_refuses_another_benchmarks(tmp_path, capsys):
    import csv

    out = tmp_path / "lip"
    assert cli(["synth", "lip-words", "--out", str(out), "--words", "4", "--speakers", "6", "--speaker-split",
                "disjoint", "--train-per-word", "2", "--val-per-word", "1", "--test-per-word", "1", "--workers", "1",
                "--quiet"]) == 0
    rows = list(csv.DictReader((out / "meta.csv").open()))
    assert len({r["word"] for r in rows}) == 4 and len(rows) == 4 * (2 + 1 + 1)
    speakers = {s: {r["speaker"] for r in rows if r["split"] == s} for s in ("train", "val", "test")}
    assert not (speakers["train"] & speakers["test"]) and not (speakers["train"] & speakers["val"])
    assert cli(["synth", "lip-words", "--out", str(tmp_path / "x"), "--identities", "9", "--quiet"]) == 2
    assert "lip-words benchmark has no option(s) ['identities']" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_demo_without_runs_trains_and_evaluates_a_quick_one_then_reuses_it(tiny_set, tmp_path):
    from avlab.cli import _demo_runs, build_parser

    args = build_parser().parse_args(["demo", "--runs-dir", str(tmp_path / "runs"), "--data", str(tiny_set),
                                      "--epochs", "1", "--batch-size", "8", "--workers", "1"])
    [run] = _demo_runs(args)
    assert run == tmp_path / "runs" / "demo-cmpc"
    assert (run / "model.safetensors").exists() and (run / "eval.json").exists()
    assert _demo_runs(args) == [run]  # the newest run is used from then on


def test_demo_on_a_taken_port_is_a_clear_error(tiny_cmpc_run, capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli(["demo", "--run", str(tiny_cmpc_run), "--port", str(port), "--workers", "1"]) == 2
    assert f"cannot serve on 127.0.0.1:{port}" in capsys.readouterr().err


def test_main_job_lip_reading_and_localisation_stages_train_evaluate_and_report(
        tiny_lip_words, tiny_sounding_objects, tmp_path, capsys, monkeypatch):
    """`avlab run-main --tasks lip-reading sound-localisation --one-at-a-time` on existing sets (in
    this process, so that the recipe patched here holds; tests/test_stages.py runs stages side by
    side): ADC-SSL is trained
    and evaluated (01) and reported (04) with word accuracy beside chance and the visual oracle;
    then CMAC with the stage's recipe is trained and evaluated (01), its attention drawn (08) and reported (04) with cIoU beside the
    centre prior and the oracle. (The tiny set takes a smaller batch than the quick set's 32.)"""
    import json

    import avlab.cli

    monkeypatch.setattr(avlab.cli, "LOC_JOB", {**avlab.cli.LOC_JOB, "epochs": 1, "batch_size": 8})
    monkeypatch.setattr(avlab.cli, "check_quick_set", lambda data, benchmark: None)  # the tiny set is not quick
    out = tmp_path / "main"
    assert cli(["run-main", "--tasks", "lip-reading", "sound-localisation", "--lip-data", str(tiny_lip_words),
                "--loc-data", str(tiny_sounding_objects), "--out", str(out), "--workers", "1", "--one-at-a-time"]) == 0
    printed = capsys.readouterr().out

    run = out / "lip-reading" / "adc-ssl"
    for name in ("01_train.ipynb", "01_train.html", "eval.json", "lipreading.npz", "best.safetensors",
                 "protocol_test.csv", "loss.png"):
        assert (run / name).exists(), name
    assert (out / "lip-reading" / "04_report.html").exists() and (out / "lip-reading" / "report_test.csv").exists()
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["task"] == "lip-reading" and cfg["task_args"] == {"roi_size": 24, "crop_size": 20}
    assert "lip reading" in printed and "frozen/top1" in printed and "oracle" in printed

    stage = out / "sound-localisation"
    run = stage / "cmac"
    for name in ("01_train.html", "eval.json", "attention.npz", "model.safetensors"):
        assert (run / name).exists(), name
    assert (stage / "08_attention.html").exists() and list((stage / "attention").glob("overlay_*.png"))
    assert (stage / "04_report.html").exists()
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["method"] == "cmac" and cfg["lr"] == 5e-3 and cfg["task_args"] == avlab.cli.LOC_JOB["task_options"]
    assert cfg["method_args"]["stop_grad_target"] is True and cfg["method_args"]["within_modal_negatives"] is False
    assert "sound localisation" in printed and "localisation/beta_v/auc" in printed and "oracle" in printed
    assert "main job done" in printed and str(out / "lip-reading" / "adc-ssl") in printed
    # what a stage run side by side leaves for the job that started it (tests/test_stages.py)
    for task, method in (("lip-reading", "adc-ssl"), ("sound-localisation", "cmac")):
        record = json.loads((out / "stages" / f"{task}.json").read_text())
        assert record["runs"] == [str(out / task / method)] and record["title"] and record["outputs"]


@pytest.mark.parametrize("fixture, task, flags, decoder", [
    ("tiny_sounding_objects", "sound-localisation", ["--image-size", "40", "--n-mels", "40"],
     "avlab.data.voxceleb._write_cache"),
    ("tiny_lip_words", "lip-reading", ["--roi-size", "22", "--crop-size", "18"], "avlab.data.lrw.imap_watched"),
    ("tiny_set", "voice-face", ["--face-size", "40", "--n-mels", "40"], "avlab.data.voxceleb._write_cache"),
])
def test_prepare_cache_decodes_every_split_a_run_reads(fixture, task, flags, decoder, request, monkeypatch, capsys):
    """`avlab prepare cache`: once it has run, the training set and every split that model selection
    and the protocol read open without decoding a clip."""
    from avlab.registry import TASKS

    data = request.getfixturevalue(fixture)
    assert cli(["prepare", "cache", "--data", str(data), "--task", task, "--workers", "1", "--quiet", *flags]) == 0
    assert "decoded into the cache" in capsys.readouterr().out

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again: the cache was not warm")

    monkeypatch.setattr(decoder, no_decoding)
    t = TASKS.get(task)
    opts = dict(zip((f[2:].replace("-", "_") for f in flags[::2]), (int(v) for v in flags[1::2])))
    cfg = t.Config(**opts)
    # what training, model selection and the protocol build themselves, not what cache_parts builds
    assert len(t.train_dataset(data, cfg, workers=1, progress=False)) > 0
    t.validator(data, cfg, workers=1)  # the val clips (localisation has no validator)
    protocol_sets[task](Path(data), cfg)


def _voice_face_protocol_set(root, cfg):
    from avlab.tasks.voiceface.protocol import eval_dataset

    return eval_dataset(root, cfg, 1, False)


def _lip_reading_protocol_set(root, cfg):
    from avlab.tasks.lipreading.protocol import eval_dataset

    return eval_dataset(root, cfg, "test", 1, False)


def _localisation_protocol_set(root, cfg):
    from avlab.registry import TASKS

    return TASKS.get("sound-localisation").dataset(root, cfg, ("test",), train=False, workers=1, progress=False)


protocol_sets = {"voice-face": _voice_face_protocol_set, "lip-reading": _lip_reading_protocol_set,
                 "sound-localisation": _localisation_protocol_set}


def test_prepare_shards_still_needs_an_out_folder(tiny_sounding_objects, capsys):
    assert cli(["prepare", "shards", "--data", str(tiny_sounding_objects), "--quiet"]) == 2
    assert "needs --out" in capsys.readouterr().err


@pytest.mark.parametrize("fixture", ["tiny_lip_words", "tiny_sounding_objects"])
def test_scan_covers_the_lrw_and_vggsound_layouts(fixture, request, tmp_path, capsys):
    """`avlab scan` decode-checks every clip of a lip-words (LRW) or sounding-objects (VGGSound)
    root and names a broken one."""
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(request.getfixturevalue(fixture), root)
    clips = sorted(root.rglob("*.mp4"))
    clips[0].write_bytes(b"not a video")
    assert cli(["scan", str(root), "--workers", "1", "--quiet"]) == 1
    out = capsys.readouterr().out
    assert f"BAD {clips[0].relative_to(root)}" in out and f"{len(clips) - 1} of {len(clips)} clips OK" in out
