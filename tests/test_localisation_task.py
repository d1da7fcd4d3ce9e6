"""The sound-localisation task end to end on a tiny sounding-objects set: generator layout,
determinism and resume, the oracle against a simulation, the dataset, CMAC learning, the CLI."""
import csv
import json
import os

import numpy as np
import pytest
import torch

from avlab.data.synth.sounding_objects import SoundingObjectsConfig, render_audio, render_frames, sample_classes, \
    sample_scene
from avlab.registry import TASKS

TINY = dict(classes=4, clips_per_class=8, size=64, seed=3)


@pytest.fixture(scope="module")
def tiny_so(tmp_path_factory):
    from avlab.tasks.localisation import generate_sounding_objects

    return generate_sounding_objects(SoundingObjectsConfig(**TINY), tmp_path_factory.mktemp("so") / "sounding-objects",
                                     workers=2, progress=False)


def test_layout_csv_boxes_and_manifest(tiny_so):
    from avlab.data.manifest import detect_task

    assert detect_task(tiny_so) == "sound-localisation" and TASKS.get("sound-localisation").recognises(tiny_so)
    rows = list(csv.reader(open(tiny_so / "vggsound.csv")))
    assert len(rows) == 32 and all(len(r) == 4 and r[3] in ("train", "test") for r in rows)
    assert all((tiny_so / "video" / f"{r[0]}_{int(r[1]):06d}.mp4").exists() for r in rows)
    meta = list(csv.DictReader(open(tiny_so / "meta.csv")))
    vggss = json.loads((tiny_so / "vggss.json").read_text())
    annotated = {m["file"] for m in meta if m["split"] == "test" and m["onscreen"] == "1"}
    assert {e["file"] for e in vggss} == annotated
    assert all(0 <= v <= 1 for e in vggss for v in e["bbox"][0])
    boxes = np.load(tiny_so / "latents" / "boxes.npz")
    for m in meta:  # a box in every frame exactly when the source is on screen, inside the frame
        b = boxes[m["file"]]
        assert b.shape == (int(m["n_frames"]), 4) and np.isnan(b).all() == (m["onscreen"] == "0")
    ok = np.concatenate([boxes[m["file"]] for m in meta if m["onscreen"] == "1"])
    assert (ok[:, 0] < ok[:, 2]).all() and (ok >= 0).all() and (ok <= 64).all()
    oracle = json.loads((tiny_so / "oracle.json").read_text())
    assert oracle["localisation"]["exact"]["value"]["ciou@0.5"] == 1.0


def test_scenes_and_media_are_deterministic():
    cfg = SoundingObjectsConfig(**TINY)
    classes = sample_classes(cfg)
    assert sample_scene(cfg, 5) == sample_scene(cfg, 5) and sample_scene(cfg, 5) != sample_scene(cfg, 6)
    scene = sample_scene(cfg, 5)
    w1, e1 = render_audio(cfg, classes, scene)
    w2, e2 = render_audio(cfg, classes, scene)
    f1, b1 = render_frames(cfg, classes, scene, e1)
    f2, b2 = render_frames(cfg, classes, scene, e2)
    assert np.array_equal(w1, w2) and np.array_equal(f1, f2) and np.array_equal(b1, b2, equal_nan=True)
    # the source's energy lies in its bands: most of the spectrum's power is inside them
    spec = np.abs(np.fft.rfft(w1)) ** 2
    freqs = np.fft.rfftfreq(len(w1), 1 / cfg.sample_rate)
    from avlab.data.synth.sounding_objects import clip_bands

    inside = np.any([(freqs >= lo) & (freqs <= hi) for lo, hi in clip_bands(classes[scene.cls], scene)], axis=0)
    assert spec[inside].sum() / spec.sum() > 0.8


def test_a_second_run_resumes_and_another_config_is_refused(tiny_so):
    from avlab.data.synth.sounding_objects import generate

    clip = next((tiny_so / "video").iterdir())
    before = clip.stat().st_mtime_ns
    generate(SoundingObjectsConfig(**TINY), tiny_so, workers=0, progress=False)
    assert clip.stat().st_mtime_ns == before
    with pytest.raises(ValueError, match="another config"):
        generate(SoundingObjectsConfig(**{**TINY, "seed": 4}), tiny_so, workers=0, progress=False)
    with pytest.raises(ValueError, match="no option"):
        SoundingObjectsConfig.from_profile("quick", identities=3)
    with pytest.raises(ValueError, match="max_distractors must be >= 1"):
        SoundingObjectsConfig.from_profile("quick", max_distractors=0)


@pytest.mark.parametrize("max_distractors", [3, 1])  # standard's scenes, quick's
def test_image_class_ceiling_matches_a_simulation(max_distractors):
    from avlab.tasks.localisation.oracle import image_class_ceiling, simulate_image_accuracy

    cfg = SoundingObjectsConfig(classes=10, offscreen_fraction=0.3, max_distractors=max_distractors)
    closed = image_class_ceiling(cfg.classes, cfg.max_distractors, cfg.offscreen_fraction)
    assert simulate_image_accuracy(cfg, n=6000) == pytest.approx(closed, abs=0.025)


def test_dataset_batches_are_seeded_by_epoch_and_index(tiny_so):
    task = TASKS.get("sound-localisation")
    ds = task.train_dataset(tiny_so, task.Config(), workers=0, progress=False)
    assert len(ds) == 24 and ds.n_classes == 4
    a, b = ds[(1, 3)], ds[(1, 3)]
    assert torch.equal(a["image"], b["image"]) and not torch.equal(a["image"], ds[(2, 3)]["image"])
    batch = ds.collate([ds[(0, i)] for i in range(4)])
    assert batch["image"].shape == (4, 3, 64, 64) and batch["audio"].shape == (4, 64, 101)
    assert batch["label"].tolist() == [ds.label_of[c.label] for c in ds.clips[:4]]


@pytest.mark.skipif(not os.environ.get("AVLAB_SLOW_TESTS"), reason="~5 min on 2 cores; AVLAB_SLOW_TESTS=1 runs it")
@pytest.mark.xfail(strict=False, reason="measured 2026-11-28: after 30 epochs β_v mean cIoU 0.072 < centre prior "
                                        "0.172 on the tiny set's train clips; CMAC does not localise yet (issue 14)")
def test_cmac_learns_to_localise_the_tiny_set_above_the_centre_prior(tiny_so, tmp_path):
    """Overfit check: after a short run β_v points at the sounding object on the training clips
    more often than a centre-prior map does."""
    from avlab.data.vggsound import key_frame
    from avlab.eval import localisation as L
    from avlab.runs import load_run
    from avlab.tasks.localisation.protocol import run_clips
    from avlab.train import TrainConfig, train

    cfg = TrainConfig(method="cmac", data=str(tiny_so), out=str(tmp_path / "run"), epochs=30, batch_size=8, workers=0,
                      lr=2e-3, task_args={"augment": False}, seed=0)
    train(cfg, progress=False)
    cfg, method = load_run(tmp_path / "run")
    task = TASKS.get("sound-localisation")
    ds = task.dataset(tiny_so, cfg.task_config(), ("train",), train=False, workers=0, progress=False)
    out = run_clips(method, ds, progress=False)
    boxes = np.load(tiny_so / "latents" / "boxes.npz")
    idx = [i for i, c in enumerate(ds.clips) if not np.isnan(boxes[c.file][0, 0])]
    gt = {i: [boxes[ds.clips[i].file][key_frame(ds.clips[i].n_frames)].tolist()] for i in idx}
    model = np.mean([L.clip_ciou(out["beta_v"][i], gt[i], (64, 64)) for i in idx])
    prior = np.mean([L.clip_ciou(L.centre_prior((8, 8)), gt[i], (64, 64)) for i in idx])
    assert model > prior, (model, prior)


def test_train_and_eval_through_the_cli_then_cid_on_the_same_protocol(tiny_so, tmp_path):
    from avlab.cli import main as cli
    from avlab.eval.run_eval import evaluate_run
    from avlab.train import TrainConfig, train

    run = tmp_path / "cmac"
    assert cli(["train", "--method", "cmac", "--data", str(tiny_so), "--out", str(run), "--epochs", "1",
                "--batch-size", "8", "--workers", "0", "--eval", "--quiet", "--spatial-consistency", "0.5"]) == 0
    result = json.loads((run / "eval.json").read_text())
    config = json.loads((run / "config.json").read_text())
    assert config["task"] == "sound-localisation" and config["method_args"]["spatial_consistency"] == 0.5
    loc = result["metrics"]["test"]["localisation"]
    assert {"beta_v", "alpha_v"} <= set(loc) and 0 <= loc["beta_v"]["ciou@0.5"] <= 1
    assert {"alpha_a", "beta_a"} <= set(result["metrics"]["test"]["frequency"])
    assert set(result["metrics"]["test"]["probe"]["linear"]) == {"audio", "image"}
    assert result["oracle"]["test"]["classification"]["audio"] == 1.0 and "centre_prior" in result["chance"]["test"]["localisation"]
    head = TASKS.get("sound-localisation").headline(result)
    assert "localisation/beta_v/ciou@0.5" in head and "probe/knn/image" in head
    att = np.load(run / "attention.npz")
    assert att["beta_v"].dtype == np.float16 and att["beta_v"].shape[1:] == (8, 8) and int(att["image_size"]) == 64
    assert len(att["files"]) == result["n_test_clips"] and np.isfinite(att["boxes"]).any(axis=1).sum() == result["n_annotated"]
    # cid (no attention modules) is scored on its similarity map by the same protocol
    cid = tmp_path / "cid"
    train(TrainConfig(method="cid", data=str(tiny_so), out=str(cid), epochs=1, batch_size=8, workers=0), progress=False)
    r = evaluate_run(cid, progress=False, device="cpu", n_boot=20)
    assert set(r["metrics"]["test"]["localisation"]) == {"beta_v"} and r["metrics"]["test"]["frequency"] == {}
