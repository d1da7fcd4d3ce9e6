"""lip-words: LRW layout, determinism, homophenes by construction, the oracle against a simulation,
the dataset's batches, and the LRW reader's errors."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from avlab.data.lrw import index_lrw, mouth_roi, read_duration
from avlab.data.synth.lip_words import VOCABULARY, LipWordsConfig, canonical_phonemes, clip_jobs, render_clip, sample_speakers
from avlab.data.synth.visemes import mouth_shapes, viseme_sequence, visemes_of
from avlab.registry import TASKS
from avlab.tasks.lipreading.oracle import bayes_accuracy, oracle_metrics, simulate_visual_accuracy


def _rows(root):
    with open(Path(root) / "meta.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_layout_is_lrw_with_txt_meta_latents_and_manifest(tiny_lip_words):
    root = tiny_lip_words
    cfg = LipWordsConfig.from_profile("tiny")
    rows = _rows(root)
    assert len(rows) == cfg.n_words * (8 + 2 + 3)
    for r in rows:
        word, split, name = Path(r["path"]).parts[-3:]
        assert r["path"].startswith("lipread_mp4/") and word == r["word"] and split == r["split"]
        assert name.startswith(f"{word}_") and len(name) == len(word) + len("_00001.mp4")
    first = root / rows[0]["path"]
    assert read_duration(first.with_suffix(".txt")) == pytest.approx(float(rows[0]["duration"]), abs=0.006)
    assert {p.name for p in (root / "latents").iterdir()} >= {"vocabulary.json", "speakers.json", "mouth.npz"}
    assert json.loads((root / "avlab-dataset.json").read_text())["task"] == "lip-reading"
    assert TASKS.get("lip-reading").recognises(root) and not TASKS.get("voice-face").recognises(root)
    clips = index_lrw(root)
    assert len(clips) == len(rows) and all(c.speaker.startswith("spk") for c in clips)
    # The word sits in the middle of the 1.16-s clip, as in LRW.
    centres = [(float(r["word_start"]) + float(r["word_end"])) / 2 for r in rows]
    assert np.allclose(centres, 0.58, atol=0.03)


def test_generation_is_deterministic_and_resumable(tiny_lip_words, tmp_path):
    cfg = json.loads((tiny_lip_words / "synth_config.json").read_text())
    cfg = LipWordsConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items() if k != "benchmark"})
    job = clip_jobs(cfg, sample_speakers(cfg), str(tmp_path))[5]
    again = render_clip(job)
    assert (tmp_path / job.relpath).read_bytes() == (tiny_lip_words / job.relpath).read_bytes()
    meta = next(r for r in _rows(tiny_lip_words) if r["path"] == job.relpath)
    assert {k: str(v) for k, v in again["row"].items()} == meta
    stored = np.load(tiny_lip_words / "latents" / "mouth.npz")[job.relpath]
    assert np.array_equal(again["shapes"], stored)
    # Re-running on the finished folder keeps every clip (nothing re-encoded).
    mtime = (tiny_lip_words / job.relpath).stat().st_mtime_ns
    TASKS.get("lip-reading").generate("lip-words", tiny_lip_words, profile="tiny", workers=1, progress=False, seed=3)
    assert (tiny_lip_words / job.relpath).stat().st_mtime_ns == mtime


def test_another_config_in_the_same_folder_is_refused(tiny_lip_words):
    with pytest.raises(ValueError, match="another config"):
        TASKS.get("lip-reading").generate("lip-words", tiny_lip_words, profile="tiny", workers=1, progress=False, seed=4)


def test_viseme_map_hand_cases():
    assert visemes_of("p") == visemes_of("b") == visemes_of("m") == ("PBM",)
    assert visemes_of("'aI") == ("AA", "IY") and visemes_of("dZ") == ("SH",) and visemes_of("T") == ("TH",)
    assert visemes_of("t") != visemes_of("T")  # case matters in espeak mnemonics
    assert viseme_sequence(["n", "'V", "m", "b", "3"]) == ("TDN", "EH", "PBM", "EH")  # m b: one closure


def test_coarticulation_blends_neighbouring_visemes_and_leads_the_audio():
    segs = [(0.0, 0.2, "m"), (0.2, 0.4, "a")]  # lips closed, then wide open
    t = np.array([0.1, 0.19, 0.2, 0.21, 0.3])
    sharp = mouth_shapes(segs, t, coartic_s=1e-4, lead_s=0.0)[:, 0]
    soft = mouth_shapes(segs, t, coartic_s=0.03, lead_s=0.0)[:, 0]
    led = mouth_shapes(segs, t, coartic_s=0.03, lead_s=0.02)[:, 0]
    assert sharp[1] == pytest.approx(0.0, abs=1e-3) and sharp[3] == pytest.approx(1.0, abs=1e-3)
    assert 0.05 < soft[1] < soft[2] < soft[3] < 0.95  # a blend across the boundary
    assert led[1] > soft[1]  # the mouth opens before the vowel sounds


def test_homophenes_exist_by_construction_in_the_quick_vocabulary():
    groups = {}
    for w in VOCABULARY[:30]:
        groups.setdefault(viseme_sequence(list(canonical_phonemes(w))), set()).add(w)
    found = {frozenset(g) for g in groups.values() if len(g) > 1}
    expected = [{"PAT", "BAT", "MAT"}, {"FAN", "VAN"}, {"BILL", "PILL", "MILL"}, {"TIME", "DIME"}, {"SUE", "ZOO"},
                {"COAT", "GOAT"}, {"BUY", "PIE", "MY"}, {"WHITE", "WIDE"}]
    assert all(frozenset(g) in found for g in expected)
    phon = {tuple(canonical_phonemes(w)) for w in VOCABULARY[:30]}
    assert len(phon) == 30  # no homophones: audio tells every word apart


def test_oracle_matches_the_closed_form_and_a_simulation(tiny_lip_words):
    vocab = json.loads((tiny_lip_words / "latents" / "vocabulary.json").read_text())
    oracle = json.loads((tiny_lip_words / "oracle.json").read_text())
    assert oracle == json.loads(json.dumps(oracle_metrics(tiny_lip_words), sort_keys=True))
    n_classes = vocab["n_viseme_classes"]
    # Equal clips per word and one viseme sequence per word: (viseme classes) / (words).
    assert oracle["visual"]["top1"] == pytest.approx(n_classes / 6) and n_classes == 4
    assert oracle["audio"]["top1"] == 1.0 and oracle["chance"]["top1"] == pytest.approx(1 / 6)
    assert oracle["speaker"]["chance"] == pytest.approx(1 / oracle["speaker"]["n_speakers"])
    # Monte Carlo over the generator's prior (quick vocabulary) against the closed form.
    seqs = {w: "-".join(viseme_sequence(list(canonical_phonemes(w)))) for w in VOCABULARY[:30]}
    closed = bayes_accuracy(list(seqs), list(seqs.values()))
    n = 20_000
    sim = simulate_visual_accuracy(seqs, n, seed=1)
    assert abs(sim - closed) < 4 * np.sqrt(closed * (1 - closed) / n) and closed == len(set(seqs.values())) / 30


def test_batches_hold_video_mfcc_word_and_speaker_and_are_seeded(tiny_lip_words):
    task = TASKS.get("lip-reading")
    cfg = task.Config(roi_size=32, crop_size=28)
    ds = task.train_dataset(tiny_lip_words, cfg, workers=0, progress=False)
    ds.seed = 5
    b = ds.collate([ds[(0, i)] for i in range(4)])
    assert b["video"].shape == (4, 1, 29, 28, 28) and b["audio"].shape == (4, 13, 4 * 29)
    assert b["video"].min() >= -1 and b["video"].max() <= 1 and torch.isfinite(b["audio"]).all()
    assert ds.n_classes == 6 and b["label"].tolist() == ds.labels[:4].tolist() and (b["speaker"] >= 0).all()
    assert torch.equal(ds[(3, 2)]["video"], ds[(3, 2)]["video"]) and not torch.equal(ds[(3, 2)]["video"], ds[(4, 2)]["video"])
    names = ds.sample_names()
    ds.subset(0.25, seed=1)
    assert len(ds) == round(0.25 * len(names)) and set(ds.sample_names()) <= set(names)
    assert task.data_spec(ds).modalities["video"].encoder == "lip_video_tiny"


def test_the_generator_does_not_import_the_protocol():
    code = ("import sys, avlab.data.synth.lip_words; "
            "bad = [m for m in sys.modules if m.startswith(('avlab.tasks', 'avlab.eval', 'avlab.methods'))]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_lrw_reader_errors_name_the_folder_and_bad_clips_are_listed(tiny_lip_words, tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        index_lrw(tmp_path)
    root = tmp_path / "lrw"
    src = tiny_lip_words / "lipread_mp4" / "PAT" / "test"
    for split in ("train", "val", "test"):
        (root / "lipread_mp4" / "PAT" / split).mkdir(parents=True)
        (root / "lipread_mp4" / "PAT" / split / "PAT_00001.mp4").write_bytes((src / "PAT_00001.mp4").read_bytes())
    (root / "lipread_mp4" / "PAT" / "train" / "PAT_00002.mp4").write_bytes(b"not a video")
    from avlab.tasks.lipreading.dataset import LipWordsDataset

    ds = LipWordsDataset(root, ("train",), workers=0, progress=False)
    assert len(ds) == 1 and ds.bad[0]["path"].endswith("PAT_00002.mp4") and ds.speaker_ids.tolist() == [-1]


def test_lrw_mouth_roi_is_the_fixed_box_of_a_256_face():
    frames = np.zeros((2, 256, 256, 3), np.uint8)
    frames[:, 115:211, 79:175] = 200  # the LRW mouth box
    roi = mouth_roi(frames, 32)
    assert roi.shape == (2, 32, 32) and (roi == 200).all()
    assert mouth_roi(np.full((1, 40, 40, 3), 7, np.uint8), 32).shape == (1, 32, 32)


def test_a_face_video_gives_the_mouth_below_the_haar_face_box():
    from test_demo_inputs import drawn_face  # a cartoon face the Haar cascade finds (tested there)

    from avlab.data.lrw import NoMouthError, crop_mouth, mouth_box

    assert mouth_box((100, 50, 80, 80), 300, 400) == (94, 134, 120, 160)  # centre (140, 114), side 40
    assert mouth_box((0, 250, 80, 80), 300, 400)[1] == 300  # pushed inside the frame
    frames = np.repeat(drawn_face()[None], 3, axis=0)  # mouth drawn as a dark ellipse centred at (280, 180)
    mouth, how = crop_mouth(frames)
    assert "Haar" in how and mouth.shape[0] == 3 and mouth.shape[1] == mouth.shape[2]
    assert mouth.mean(axis=-1)[0].min() < 100  # the dark lips are inside the crop …
    rows, cols = np.nonzero(mouth.mean(axis=-1)[0] < 100)
    assert abs(rows.mean() - mouth.shape[1] / 2) < mouth.shape[1] / 4  # … near its middle
    assert abs(cols.mean() - mouth.shape[2] / 2) < mouth.shape[2] / 4
    with pytest.raises(NoMouthError, match="no face found"):
        crop_mouth(np.full((2, 200, 300, 3), 128, np.uint8))
    small, how = crop_mouth(np.zeros((2, 40, 60, 3), np.uint8))
    assert small.shape == (2, 40, 40, 3) and how == "the centre square of the frame"
