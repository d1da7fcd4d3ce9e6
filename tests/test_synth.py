"""The talking-faces generator: media round-trip, determinism, lists, lip-sync, separability, oracle."""
import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from avlab.data import media
from avlab.tasks.voiceface import generate_talking_faces
from avlab.tasks.voiceface.oracle import simulate_matching
from avlab.data.synth.talking_faces import SAMPLES_PER_FRAME, TalkingFacesConfig, generate, viseme_openness
from avlab.eval.voiceface import read_matching, read_verification
from avlab.viz.data_tour import lipsync_correlation


def test_every_clip_round_trips(tiny_set, tiny_cfg):
    meta = pd.read_csv(tiny_set / "meta.csv")
    assert len(meta) == tiny_cfg.identities * tiny_cfg.videos_per_id * tiny_cfg.utts_per_video
    for row in meta.itertuples():
        path = tiny_set / row.path
        info = media.probe(path)
        assert (info.n_frames, info.fps, info.sample_rate) == (row.n_frames, 25.0, 16000)
        assert (info.width, info.height) == (tiny_cfg.size, tiny_cfg.size)
        audio = media.read_audio(path)
        # AAC pads to whole 1024-sample frames; the edit list removes the encoder's priming.
        assert row.n_frames * SAMPLES_PER_FRAME <= len(audio) < row.n_frames * SAMPLES_PER_FRAME + 1024
        assert media.read_frames(path).shape == (row.n_frames, tiny_cfg.size, tiny_cfg.size, 3)


def test_layout_is_voxceleb2(tiny_set):
    meta = pd.read_csv(tiny_set / "meta.csv")
    for row in meta.itertuples():
        top, mp4, ident, video, utt = Path(row.path).parts
        assert top == ("test" if row.id_split == "test" else "dev") and mp4 == "mp4"
        assert ident == row.identity and ident.startswith("id") and len(video) == 11
        assert utt == f"{row.utt:05d}.mp4"
    vox = pd.read_csv(tiny_set / "vox2_meta.csv")
    assert list(vox.columns) == ["VoxCeleb2 ID", "VGGFace2 ID", "Gender", "Set"]


def test_same_seed_gives_a_byte_identical_set(tiny_set, tiny_cfg, tmp_path):
    # One worker here, two for the fixture: the clips are spoken and encoded in other orders, after
    # other clips, at other heap addresses; none of that may show (README, "Reproducible sets").
    again = generate_talking_faces(tiny_cfg, tmp_path / "again", workers=1, progress=False)
    files = sorted(p.relative_to(tiny_set) for p in tiny_set.rglob("*") if p.is_file())
    assert sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file()) == files
    assert sum(p.suffix == ".mp4" for p in files) == len(pd.read_csv(tiny_set / "meta.csv"))
    different = [str(name) for name in files if (tiny_set / name).read_bytes() != (again / name).read_bytes()]
    assert different == []


def test_speech_does_not_depend_on_what_was_spoken_before():
    from avlab.data.synth.espeak import Espeak
    from avlab.data.synth.espeak_server import Engine

    fox, before = "The quick brown fox jumps over the lazy dog.", ("What?", 200)
    # The problem, shown in this process: the same sentence after a quick question comes out different.
    here = Engine()
    alone, _, after = here.speak(fox, 170, 50, 50), here.speak(*before, 50, 50), here.speak(fox, 170, 50, 50)
    assert alone["samples"] != after["samples"] and alone["phonemes"] == after["phonemes"]
    # Through the server, it does not.
    engine = Espeak()
    first = engine.synth(fox)
    engine.synth(*before)
    again = engine.synth(fox)
    assert first.audio.size > 10_000 and np.array_equal(first.audio, again.audio)
    assert first.phonemes == again.phonemes and first.words == again.words


def test_a_dead_speech_server_is_an_error_that_names_the_text():
    from avlab.data.synth.espeak import Espeak, EspeakError

    engine = Espeak()
    engine._server.kill()
    engine._server.wait()
    with pytest.raises(EspeakError, match="server stopped while speaking 'hello'"):
        engine.synth("hello")
    assert Espeak() is not engine and Espeak().synth("hello").audio.size > 0  # a fresh server


def test_a_forked_child_speaks_through_its_own_server():
    import multiprocessing as mp

    from avlab.data.synth.espeak import Espeak

    parent = Espeak()
    expected = parent.synth("seven silver swans").audio
    with mp.get_context("fork").Pool(1) as pool:
        pid, audio = pool.apply(_speak_in_child, ("seven silver swans",))
    assert pid != parent._server.pid and np.array_equal(audio, expected)
    assert np.array_equal(parent.synth("seven silver swans").audio, expected)  # the parent's server is intact


def _speak_in_child(text):
    from avlab.data.synth.espeak import Espeak

    engine = Espeak()
    return engine._server.pid, engine.synth(text).audio


def test_regenerating_into_a_set_with_another_config_is_refused(tiny_set, tiny_cfg):
    with pytest.raises(ValueError, match="another config"):
        generate(TalkingFacesConfig(**{**tiny_cfg.__dict__, "seed": 99}), tiny_set, workers=1, progress=False)


def test_lists_are_consistent_with_meta(tiny_set):
    meta = pd.read_csv(tiny_set / "meta.csv").set_index("path")
    lists = tiny_set / "lists"
    for tag, split in (("seenheard", "seen_heard"), ("unseenunheard", "unseen_unheard")):
        for kind in ("random", "G"):
            rows = read_verification(lists / f"veriflist_test_{kind}_{tag}.txt")
            assert {r[2] for r in rows} == {0, 1}
            cross_gender = 0
            for voice, face, label in rows:
                assert meta.loc[voice, "clip_split"] == split and meta.loc[face, "clip_split"] == split
                assert label == int(meta.loc[voice, "identity"] == meta.loc[face, "identity"])
                cross_gender += meta.loc[voice, "gender"] != meta.loc[face, "gender"]
            if kind == "G":
                assert cross_gender == 0
            else:
                assert cross_gender > 0
        for direction in ("v2f", "f2v"):
            for key in ("U", "G", "N10"):
                for probe, pos, *negs in read_matching(lists / f"matching_{direction}_{key}_{tag}.csv"):
                    ident = meta.loc[probe, "identity"]
                    assert meta.loc[pos, "identity"] == ident
                    neg_ids = [meta.loc[n, "identity"] for n in negs]
                    assert ident not in neg_ids and len(set(neg_ids)) == len(neg_ids)
                    if key == "G":
                        assert all(meta.loc[n, "gender"] == meta.loc[probe, "gender"] for n in negs)
    test_ids = set(meta[meta.id_split == "test"].identity)
    with open(lists / "retrieval_wav_unseenunheard.csv") as f:
        assert {r["identity"] for r in csv.DictReader(f)} == test_ids


def test_mouth_follows_speech(tiny_set):
    meta = pd.read_csv(tiny_set / "meta.csv")
    r = [lipsync_correlation(tiny_set, p) for p in meta.path[:12]]
    assert np.mean(r) > 0.4, r
    # And the mouth is really drawn: the clip's pixels change most where the mouth moves.
    mouth = np.load(tiny_set / "latents" / "mouth.npz")[meta.path[0]]
    frames = media.read_frames(tiny_set / meta.path[0]).astype(float)
    lower = frames[:, frames.shape[1] // 2:].mean(axis=(1, 2, 3))
    assert abs(np.corrcoef(mouth, lower)[0, 1]) > 0.3


def test_viseme_table():
    assert viseme_openness("'aI") == 1.0 and viseme_openness("m") == 0.0 and viseme_openness("_:") == 0.0
    assert viseme_openness("i:") < viseme_openness("'0") < viseme_openness("a")


def _nearest_centroid_accuracy(train_x, train_y, test_x, test_y):
    mu, sd = train_x.mean(0), train_x.std(0) + 1e-6
    train_x, test_x = (train_x - mu) / sd, (test_x - mu) / sd
    labels = sorted(set(train_y))
    cents = np.stack([train_x[np.array(train_y) == l].mean(0) for l in labels])
    pred = [labels[i] for i in ((test_x[:, None] - cents[None]) ** 2).sum(-1).argmin(1)]
    return np.mean(np.array(pred) == np.array(test_y))


def test_identities_are_separable_in_both_modalities(tiny_set):
    import torch

    from avlab.data.features import log_mel

    meta = pd.read_csv(tiny_set / "meta.csv")
    seen = meta[meta.id_split == "train"]
    feats = defaultdict(list)
    for row in seen.itertuples():
        path = tiny_set / row.path
        spec = log_mel(torch.from_numpy(media.read_audio(path)), normalize=False).numpy()
        loud = spec[:, spec.mean(0) > np.median(spec.mean(0))]  # speech frames, not pauses
        raw = loud.mean(1)  # long-term spectrum of speech: formants, tilt, pitch region
        frame = media.read_frames(path, [row.n_frames // 2])[0][::4, ::4].reshape(-1) / 255.0
        part = "test" if row.clip_split == "seen_heard" else "train"
        feats[part, "audio"].append(np.concatenate([raw, loud.std(1)]))
        feats[part, "face"].append(frame)
        feats[part, "y"].append(row.identity)
    chance = 1.0 / seen.identity.nunique()
    for modality in ("audio", "face"):
        acc = _nearest_centroid_accuracy(np.array(feats["train", modality]), feats["train", "y"],
                                         np.array(feats["test", modality]), feats["test", "y"])
        assert acc > 3 * chance, (modality, acc, chance)


def test_oracle_is_at_chance_without_coupling_and_rises_with_it(tmp_path):
    acc = [simulate_matching(c, n_identities=300, n_trials=3000) for c in (0.0, 0.3, 0.6, 0.9)]
    assert acc[0] == pytest.approx(0.5)
    assert all(a < b for a, b in zip(acc, acc[1:])), acc
    # End to end on a rendered set: at coupling 0 every list is at chance.
    root = generate_talking_faces(TalkingFacesConfig(identities=8, videos_per_id=1, utts_per_video=2, size=32,
                                                     coupling=0.0), tmp_path / "c0", workers=1, progress=False)
    oracle = json.loads((root / "oracle.json").read_text())
    for split in oracle.values():
        for direction in split["matching_1to2"].values():
            assert direction["U"] == pytest.approx(0.5)
        assert split["verification"]["U"]["auc"] == pytest.approx(0.5)


def test_oracle_on_the_tiny_set_is_far_above_chance(tiny_set):
    oracle = json.loads((tiny_set / "oracle.json").read_text())
    assert oracle["seen_heard"]["matching_1to2"]["v2f"]["U"] > 0.8


def test_bad_configs_name_the_problem():
    with pytest.raises(ValueError, match="coupling"):
        TalkingFacesConfig(coupling=1.5)
    with pytest.raises(ValueError, match="identities"):
        TalkingFacesConfig(identities=3)
    with pytest.raises(ValueError, match="profile"):
        TalkingFacesConfig.from_profile("huge")
