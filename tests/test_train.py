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
    # thread/OpenMP state left by other tests (one full-suite run on a loaded machine scored 0.5, the
    # others above 0.6), so the bar is "far above chance": 7 of 16 or more has a chance probability
    # of 0.002.
    assert top1 > 0.4, top1


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
    assert cli(args + ["--per-identity", "0.5", "1", "--cluster-warmup-epochs", "0", "--grad-clip", "0",
                       "--warmup-epochs", "0.1", "--eval"]) == 0
    assert (out / "eval.json").exists()
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["grad_clip"], cfg["warmup_epochs"], cfg["method_args"]["per_identity"]) == (0.0, 0.1, [0.5, 1.0])
    # K as multiples of the training identities; the first clustering kept for the CMPC-claim study
    from safetensors import safe_open

    from avlab.eval.clusters import run_cluster_scores

    n_ids = cfg["n_train_identities"]
    with safe_open(str(out / "clusters_first.safetensors"), "pt") as f:
        assert json.loads(f.metadata()["num_prototypes"]) == [round(0.5 * n_ids), n_ids]
    first = run_cluster_scores(out, which="first")
    assert [g["k"] for g in first["voice"]] == [round(0.5 * n_ids), n_ids] and 0 < first["face"][0]["purity"] <= 1
    assert cli(args) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert cli(["train", "--method", "cid", "--data", str(tiny_set), "--out", str(tmp_path / "x"),
                "--kappa", "0.2", "--quiet"]) == 2
    assert "has no option(s) ['kappa']" in capsys.readouterr().err


def test_lowshot_recipe_probes_then_fine_tunes_beside_zero_shot_and_scratch(tiny_set, tmp_path):
    from avlab.lowshot import Recipe, run_lowshot, table_text

    pre = train(cfg_for(tiny_set, tmp_path / "pre", method="cid", epochs=1), progress=False)
    evaluate_run(pre, progress=False)
    recipe = Recipe(probe_epochs=1, finetune_epochs=2, scratch_epochs=1, early_stop=1)
    summary = run_lowshot({"cid": str(pre)}, str(tiny_set), tmp_path / "ls", fractions=(0.5,), seeds=(0, 1),
                          recipe=recipe, progress=False)
    assert summary["split"] == "unseen_unheard" and len(summary["runs"]) == 2 * 4
    assert list(summary["table"]["0.5"]) == ["cid/zero-shot", "cid/probe", "cid/fine-tune", "scratch"]
    zero = json.loads((pre / "eval.json").read_text())["metrics"]["unseen_unheard"]["verification"]["U"]["auc"]
    assert summary["table"]["0.5"]["cid/zero-shot"]["verification/U/auc"] == [pytest.approx(zero), 0.0]
    assert "cid/fine-tune" in table_text(summary)
    # The probe kept the pre-trained trunks bit for bit (BatchNorm statistics too); its last linear
    # layers learned. Fine-tuning started from the probe, classifier included, at a tenth of the lr.
    before, probe = load_file(str(pre / "model.safetensors")), load_file(str(tmp_path / "ls" / "cid-probe-0.5-s0" / "model.safetensors"))
    trunk = [k for k in before if ".trunk." in k or ".stem." in k]
    assert trunk and all(torch.equal(before[k], probe[k]) for k in trunk)
    assert not torch.equal(before["encoders.face.fc.weight"], probe["encoders.face.fc.weight"])
    ft = json.loads((tmp_path / "ls" / "cid-finetune-0.5-s0" / "config.json").read_text())
    pre_cfg = json.loads((pre / "config.json").read_text())
    assert ft["init_from"].endswith("cid-probe-0.5-s0") and ft["trunk_lr_scale"] == 0.1
    assert ft["lr"] == pytest.approx(pre_cfg["lr"] * 0.1) and ft["n_train_clips"] < pre_cfg["n_train_clips"]


def test_fine_tuning_starts_from_the_probe_classifier(tiny_set, tmp_path):
    probe = train(cfg_for(tiny_set, tmp_path / "probe", method="supervised", epochs=1, trunk_lr_scale=0.0),
                  progress=False)
    from avlab.train import build, resolve_task

    cfg = resolve_task(cfg_for(tiny_set, tmp_path / "ft", method="supervised", init_from=str(probe)))
    _, method = build(cfg, progress=False)
    assert torch.equal(method.classifier.detach(), load_file(str(probe / "model.safetensors"))["classifier"])


def test_trunk_learning_rate_is_scaled_and_zero_freezes(tiny_set):
    from avlab.train import _param_groups, build, resolve_task

    _, method = build(resolve_task(cfg_for(tiny_set, "unused", method="cid")), progress=False)
    groups = _param_groups(cfg_for(tiny_set, "unused", method="cid", trunk_lr_scale=0.25), method)
    trunk = {id(p) for m in method.trunk_modules() for p in m.parameters()}
    assert [g["lr_scale"] for g in groups] == [1.0, 0.25]
    assert {id(p) for p in groups[1]["params"]} == trunk and not trunk & {id(p) for p in groups[0]["params"]}
    groups = _param_groups(cfg_for(tiny_set, "unused", method="cid", trunk_lr_scale=0.0), method)
    assert len(groups) == 1 and not trunk & {id(p) for p in groups[0]["params"]}
    method.train()
    frozen = [m for t in method.trunk_modules() for m in t.modules()]
    assert all(not m.training for m in frozen) and method.encoders["face"].fc.training
    assert all(not p.requires_grad for t in method.trunk_modules() for p in t.parameters())


def test_early_stop_after_validations_without_improvement(tiny_set, tmp_path, monkeypatch):
    from avlab.tasks.voiceface.task import VoiceFaceTask

    class Falling:  # a validation score that only gets worse after the second epoch
        metric = "val_score"
        scores = iter([0.5, 0.9, 0.8, 0.7, 0.6, 0.5])

        def __call__(self, method):
            return next(self.scores)

    monkeypatch.setattr(VoiceFaceTask, "validator", lambda self, data, cfg, workers=2: Falling())
    run = train(cfg_for(tiny_set, tmp_path / "es", method="cid", epochs=6, early_stop=2), progress=False)
    metrics = read_metrics(run)
    assert [m["epoch"] for m in metrics] == [0, 1, 2, 3] and metrics[-1]["best_epoch"] == 1
    assert (run / "model.safetensors").exists() and (run / "best.safetensors").exists()
    with pytest.raises(ValueError, match="threads >= 1"):
        train(cfg_for(tiny_set, tmp_path / "es3", method="cid", threads=0), progress=False)
    with pytest.raises(ValueError, match="needs validation scores"):
        train(cfg_for(tiny_set, tmp_path / "es2", method="cid", early_stop=2, val_every=0), progress=False)


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


def test_items_per_video_draw_a_random_utterance_and_give_one_bank_entry_per_video(tiny_set, tmp_path):
    """CMPC's released loader: one item (one memory-bank row) per video, a random utterance of it
    each time it is drawn, seeded like every other sample."""
    from avlab.registry import TASKS

    task = TASKS.get("voice-face")
    cfg = task.Config(face_size=48, crop_seconds=1.0, items="video")
    ds = task.train_dataset(tiny_set, cfg, workers=1, progress=False)
    by_video = {}
    for c in ds.clips:
        by_video.setdefault((c.identity, c.video), []).append(c.path)
    assert len(ds) == len(by_video) < len(ds.clips)
    assert ds.sample_names() == [paths[0] for paths in by_video.values()]
    picked = {ds.clips[ds.clip_of_item(0, np.random.default_rng([0, e, 0]))].path for e in range(20)}
    assert picked == set(by_video[(ds.clips[0].identity, ds.clips[0].video)])  # every utterance of video 0 comes up
    a, b = ds[(3, 1)], ds[(3, 1)]
    assert a["index"] == 1 and torch.equal(a["wave"], b["wave"])  # seeded by (seed, epoch, item)
    run = train(cfg_for(tiny_set, tmp_path / "cmpc", method="cmpc", epochs=2, task_args={"items": "video"},
                        method_args={"cluster_warmup_epochs": 1, "num_prototypes": [2, 3]}), progress=False)
    assert load_file(str(run / "clusters.safetensors"))["voice.0.assign"].shape[0] == len(by_video)
    with pytest.raises(ValueError, match="items must be 'clip' or 'video'"):
        task.train_dataset(tiny_set, task.Config(items="utterance"), workers=1, progress=False)
