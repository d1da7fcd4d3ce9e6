"""The training loop: overfits tiny data, resumes exactly, evaluates through the protocol."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from avlab.cli import main as cli
from avlab.eval.run_eval import evaluate_run
from avlab.eval.voiceface import read_matching
from avlab.train import TrainConfig, read_metrics, train

TINY_MODEL = dict(batch_size=8, workers=1)
TINY_TASK = dict(face_size=48, crop_seconds=1.0)


def cfg_for(tiny_set, out, task_args=None, **kw):
    return TrainConfig(data=str(tiny_set), out=str(out), task_args={**TINY_TASK, **(task_args or {})},
                       **{**TINY_MODEL, **kw})


def test_cid_overfits_a_tiny_set(tiny_set, tmp_path):
    from avlab.data.voxceleb import VoiceFaceDataset
    from avlab.runs import load_run
    from avlab.tasks.voiceface.protocol import embed_dataset

    run = train(cfg_for(tiny_set, tmp_path / "cid", method="cid", epochs=60, lr=3e-3, warmup_epochs=0.5,
                        train_fraction=0.5, batch_size=8, task_args={"augment": False}), progress=False)
    metrics = read_metrics(run)
    assert metrics[-1]["loss"] < 0.3 * metrics[0]["loss"], (metrics[0]["loss"], metrics[-1]["loss"])
    # The training identities are memorised: each voice retrieves a face of its own identity among
    # the training clips (a voice matches every face of its identity equally well, so not the clip).
    cfg, method = load_run(run)
    ds = VoiceFaceDataset(tiny_set, ("train",), face_size=48, crop_seconds=1.0, train=False, progress=False)
    ds.subset(cfg.train_fraction, seed=cfg.seed)
    voice, face = embed_dataset(method, ds, n_voice_crops=1, progress=False)
    ids = np.array([c.identity for c in ds.clips])
    top1 = np.mean(ids[(voice @ face.T).argmax(1)] == ids)
    # ~8 identities among the 16 clips: chance is about 1/8. Tiny CPU training is sensitive to the
    # thread/OpenMP state left by other tests, so the bar is "far above chance", not a lucky value.
    assert top1 > 0.6, top1


def _weights(run):
    return load_file(str(run / "model.safetensors"))


def _losses(run):
    return [{k: v for k, v in m.items() if k not in ("seconds", "clips_per_s")} for m in read_metrics(run)]


def test_a_killed_and_resumed_run_ends_identical(tiny_set, tmp_path):
    common = dict(method="cmpc", epochs=4, checkpoint_every=3,
                  method_args={"cluster_warmup_epochs": 1, "cluster_every": 1, "num_prototypes": [3, 5]})
    full = train(cfg_for(tiny_set, tmp_path / "full", **common), progress=False)
    cut = cfg_for(tiny_set, tmp_path / "cut", **common)
    train(cut, progress=False, stop_after_steps=7)  # "killed" after step 7; last checkpoint at step 6
    assert not (tmp_path / "cut" / "model.safetensors").exists()
    with pytest.raises(FileExistsError, match="--resume"):
        train(cut, progress=False)  # nothing already written is overwritten
    train(cut, resume=True, progress=False)
    a, b = _weights(full), _weights(tmp_path / "cut")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _losses(full) == _losses(tmp_path / "cut")
    assert (full / "clusters.safetensors").exists()


def test_resume_without_a_checkpoint_is_a_clear_error(tiny_set, tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        train(cfg_for(tiny_set, tmp_path / "none"), resume=True, progress=False)


def test_evaluation_matches_a_brute_force_recomputation(tiny_set, tmp_path):
    run = train(cfg_for(tiny_set, tmp_path / "ev", method="cid", epochs=1), progress=False)
    res = evaluate_run(run, progress=False)
    emb = np.load(run / "embeddings.npz")
    vec = {p: i for i, p in enumerate(emb["paths"])}
    rows = read_matching(tiny_set / "lists" / "matching_v2f_U_unseenunheard.csv")
    hits = 0.0
    for probe, pos, neg in rows:
        v = emb["voice"][vec[probe]]
        s_pos, s_neg = v @ emb["face"][vec[pos]], v @ emb["face"][vec[neg]]
        hits += 1.0 if s_pos > s_neg else 0.5 if s_pos == s_neg else 0.0
    assert res["metrics"]["unseen_unheard"]["matching_1to2"]["v2f"]["U"] == pytest.approx(hits / len(rows))
    saved = json.loads((run / "eval.json").read_text())
    assert set(saved) >= {"metrics", "chance", "oracle", "gap_closed"}
    assert 0.3 < saved["chance"]["unseen_unheard"]["matching_1to2"]["v2f"]["U"] < 0.7
    assert emb["voice"].shape[0] == len(emb["paths"]) and set(emb["split"]) >= {"train", "unseen_unheard"}


def test_cli_train_eval_and_bad_options(tiny_set, tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["train", "--method", "cmpc", "--data", str(tiny_set), "--out", str(out), "--epochs", "1",
            "--batch-size", "8", "--face-size", "48", "--workers", "1", "--quiet"]
    assert cli(args + ["--num-prototypes", "2", "3", "--eval"]) == 0
    assert (out / "eval.json").exists()
    assert cli(args) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert cli(["train", "--method", "cid", "--data", str(tiny_set), "--out", str(tmp_path / "x"),
                "--kappa", "0.2", "--quiet"]) == 2
    assert "has no option(s) ['kappa']" in capsys.readouterr().err


def test_lowshot_from_a_pretrained_run_and_from_scratch(tiny_set, tmp_path):
    from avlab.lowshot import run_lowshot

    pre = train(cfg_for(tiny_set, tmp_path / "pre", method="cid", epochs=1), progress=False)
    summary = run_lowshot({"cid": str(pre)}, str(tiny_set), tmp_path / "ls", fractions=(0.5,), epochs=1,
                          progress=False)
    assert set(summary["headline"]["0.5"]) == {"cid", "scratch"} and summary["split"] == "unseen_unheard"
    cfg = json.loads((tmp_path / "ls" / "cid-0.5" / "config.json").read_text())
    assert cfg["init_from"] == str(pre) and cfg["n_train_clips"] < json.loads((pre / "config.json").read_text())["n_train_clips"]


def test_model_selection_on_validation_identities_never_test(tiny_set, tmp_path):
    import pandas as pd

    meta = pd.read_csv(tiny_set / "meta.csv")
    val, test = (set(meta[meta.clip_split == s].identity) for s in ("val", "unseen_unheard"))
    assert val and test and not val & test and not val & set(meta[meta.clip_split == "train"].identity)
    run = train(cfg_for(tiny_set, tmp_path / "sel", method="cid", epochs=3), progress=False)
    metrics = read_metrics(run)
    scores = [m["val_verification_auc"] for m in metrics]
    best = int(np.argmax(scores))
    assert all(m["best_epoch"] == int(np.argmax(scores[:k + 1])) for k, m in enumerate(metrics))
    kept = load_file(str(run / "best.safetensors"))
    assert any(not torch.equal(kept[k], v) for k, v in _weights(run).items()) or best == 2
    res = evaluate_run(run, progress=False)
    assert res["weights"] == "best.safetensors"
    assert evaluate_run(run, progress=False, select="last")["weights"] == "model.safetensors"
