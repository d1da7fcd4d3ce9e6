"""ADC-SSL's options and ablations, its λ schedule and discriminator ratio, CID on lip reading, and
one tiny run through the CLI (train + the protocol) that must learn."""
import json

import numpy as np
import pytest
import torch

from avlab.losses.grl import ramp
from avlab.methods import METHODS, DataSpec, ModelConfig, create_method
from avlab.registry import TASKS

TASK = TASKS.get("lip-reading")


def spec(n_train=16, n_classes=4):
    return DataSpec("lip-reading", dict(TASK.modalities), n_train, n_classes)


def adc(n_train=16, **options):
    return create_method("adc-ssl", spec(n_train), ModelConfig(embed_dim=16), METHODS["adc-ssl"].Config(**options))


@pytest.mark.parametrize("options,present,absent", [
    ({}, {"short", "long", "identity", "modality", "lambda", "id_acc", "mod_acc"}, set()),
    ({"long": False}, {"short", "identity"}, {"long"}),  # short-only
    ({"short": False}, {"long", "modality"}, {"short"}),  # long-only
    ({"identity_adversary": False, "modality_adversary": False}, {"short", "long"}, {"identity", "modality", "lambda"}),
    ({"grl": "plain", "short_negatives": "same_clip"}, {"short", "lambda"}, set()),
])
def test_ablations_are_configs_of_the_same_code(options, present, absent):
    m = adc(**options)
    loss, logs = m.training_step(TASK.example_batch(side=12))
    assert torch.isfinite(loss) and present <= set(logs) and not absent & set(logs)
    loss.backward()


def test_bad_options_and_encoders_are_refused_by_name():
    with pytest.raises(ValueError, match="grl must be"):
        adc(grl="fast")
    with pytest.raises(ValueError, match="short_negatives"):
        adc(short_negatives="near")
    with pytest.raises(ValueError, match="frame-level encoders.*resnet_tiny"):
        create_method("adc-ssl", spec(), ModelConfig(encoders={"video": "resnet_tiny"}))
    with pytest.raises(ValueError, match="does not fit task 'voice-face'"):
        create_method("adc-ssl", DataSpec("voice-face", dict(TASKS.get("voice-face").modalities), 8))


@pytest.mark.parametrize("grl", ["momentum", "plain"])
def test_the_method_follows_the_lambda_schedule(grl):
    # 16 clips, batches of 8: 2 steps per epoch; ramp over 1 epoch → p = step / 2.
    m = adc(n_train=16, grl=grl, grl_momentum=0.5, ramp_epochs=1.0)
    expected = 0.0
    for step in range(5):
        target = float(ramp(min(step / 2, 1.0)))
        expected = 0.5 * expected + 0.5 * target if grl == "momentum" else target
        if step < 4:
            assert float(m.advance_lambda(8)) == pytest.approx(expected, abs=1e-6)
    _, logs = m.training_step(TASK.example_batch(side=12))  # a step advances it once more
    assert float(logs["lambda"]) == pytest.approx(expected, abs=1e-6)
    assert {"grl_step", "grl_lambda"} <= set(m.state_dict())  # checkpointed with the weights


def test_extra_discriminator_steps_move_the_adversaries_only():
    m = adc(disc_steps=3)
    wv, wa = torch.randn(8, 2, 128), torch.randn(8, 2, 128)
    enc = [p.clone() for p in m.encoders.parameters()]
    heads = [p.clone() for p in m.adversary_parameters()]
    m.extra_discriminator_steps(wv, wa)
    assert all(torch.equal(a, b) for a, b in zip(enc, m.encoders.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(heads, m.adversary_parameters()))
    one = adc(disc_steps=1)
    before = [p.clone() for p in one.adversary_parameters()]
    one.extra_discriminator_steps(wv, wa)
    assert all(torch.equal(a, b) for a, b in zip(before, one.adversary_parameters()))


def test_cid_pairs_clip_embeddings_with_the_tasks_encoders():
    m = create_method("cid", spec(), ModelConfig(embed_dim=16))
    assert type(m.encoders["video"]).__name__ == "LipEncoder" and m.encoders["audio"].frame_dim == 128
    loss, _ = m.training_step(TASK.example_batch())
    loss.backward()
    assert m.embed("video", TASK.example_batch()["video"][:3]).shape == (3, 16)
    override = create_method("cid", spec(), ModelConfig(encoders={"video": "lip_video_resnet18"}, embed_dim=16))
    assert override.encoders["video"].frame_dim == 512  # --encoder video=… wins over the task's default


@pytest.fixture(scope="module")
def cli_run(tiny_lip_words, tmp_path_factory):
    """``avlab train --method adc-ssl --data TINY --eval`` on small crops (a few seconds a step on CPU)."""
    from avlab.cli import main

    out = tmp_path_factory.mktemp("lip-runs") / "adc"
    code = main(["train", "--method", "adc-ssl", "--data", str(tiny_lip_words), "--out", str(out), "--epochs", "4",
                 "--batch-size", "8", "--lr", "3e-3", "--workers", "0", "--quiet", "--eval", "--roi-size", "24",
                 "--crop-size", "20", "--ramp-epochs", "2"])
    assert code == 0
    return out


def test_cli_train_and_eval_write_the_protocols_figures(cli_run, tiny_lip_words):
    cfg = json.loads((cli_run / "config.json").read_text())
    assert cfg["task"] == "lip-reading" and cfg["method_args"]["ramp_epochs"] == 2.0
    assert cfg["spec"]["modalities"]["video"]["encoder"] == "lip_video_tiny"
    res = json.loads((cli_run / "eval.json").read_text())
    test = res["metrics"]["test"]
    assert {"frozen", "lowshot_1pct", "lowshot_10pct", "identity_leakage", "modality"} <= set(test)
    assert 0 <= test["frozen"]["top1"] <= test["frozen"]["top5"] <= 1
    assert res["chance"]["test"]["frozen"]["top1"] == pytest.approx(1 / 6)
    assert res["oracle"]["ceilings"]["visual"]["top1"] == pytest.approx(4 / 6)
    # every word-accuracy variant sits under the visual ceiling in the printed tables
    assert res["oracle"]["test"]["frozen"]["top1"] == res["oracle"]["test"]["lowshot_1pct"]["top1"] == pytest.approx(4 / 6)
    assert res["chance"]["test"]["identity_leakage"]["speaker_acc"] == test["identity_leakage"]["chance"]
    lo, hi = res["ci"]["test"]["frozen"]["top1"]
    assert lo <= test["frozen"]["top1"] <= hi
    leak = test["identity_leakage"]
    assert leak["chance"] == pytest.approx(1 / leak["n_speakers"]) and 0 <= leak["speaker_acc"] <= 1
    assert 0 <= test["modality"]["classifier_acc"] <= 1 and "val" in res["metrics"]
    assert set(TASK.headline(res)) >= {"frozen/top1", "identity_leakage/speaker_acc"}
    out = np.load(cli_run / "lipreading.npz")
    assert out["logits"].shape == (len(out["paths"]), 6)


def test_adc_ssl_learns_on_the_tiny_set(cli_run):
    """Both contrasts fall, the clip embeddings find their own audio above chance, and a word
    classifier on the frozen front-end beats chance on the clips it was trained on."""
    from avlab.runs import load_run
    from avlab.tasks.lipreading.protocol import clip_embeddings, eval_dataset, frozen_features, train_backend

    log = [json.loads(line) for line in (cli_run / "metrics.jsonl").read_text().splitlines()]
    assert log[-1]["short"] < log[0]["short"] and log[-1]["long"] < log[0]["long"]
    assert log[-1]["lambda"] > log[0]["lambda"] > 0
    cfg, method = load_run(cli_run)
    ds = eval_dataset(cfg.data, cfg.task_config(), "train", 0, False)
    v = torch.nn.functional.normalize(torch.as_tensor(clip_embeddings(method, ds, "video")), dim=1)
    a = torch.nn.functional.normalize(torch.as_tensor(clip_embeddings(method, ds, "audio")), dim=1)
    retrieval = float(((v @ a.T).argmax(1) == torch.arange(len(v))).float().mean())
    assert retrieval > 2 / len(v)
    f = frozen_features(method, ds)
    fit = train_backend((f, ds.labels), (f, ds.labels), (f, ds.labels), ds.n_classes, epochs=15)
    assert fit["test"]["top1"] > 1.5 / ds.n_classes


def test_fine_tuning_variant_trains_the_front_end(cli_run, tmp_path):
    from avlab.runs import load_run
    from avlab.tasks.lipreading.protocol import evaluate

    cfg, method = load_run(cli_run)
    res = evaluate(tmp_path, cfg, method, cfg.data, progress=False, backend_epochs=2, lowshot=(), finetune_epochs=1)
    assert 0 <= res["metrics"]["test"]["finetune"]["top1"] <= 1 and "finetune" in res["metrics"]["val"]


def test_validation_1nn_matches_a_brute_force_loop():
    from avlab.tasks.lipreading.protocol import loo_1nn_accuracy

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 5)), rng.integers(0, 4, 40)
    hits = []
    for i in range(len(x)):
        cos = [x[i] @ x[j] / np.linalg.norm(x[i]) / np.linalg.norm(x[j]) if j != i else -np.inf for j in range(len(x))]
        hits.append(y[int(np.argmax(cos))] == y[i])
    assert loo_1nn_accuracy(x, y) == pytest.approx(np.mean(hits))
    assert loo_1nn_accuracy(np.eye(3)[[0, 0, 1, 1, 2, 2]] + 0.01 * rng.normal(size=(6, 3)), [0, 0, 1, 1, 2, 2]) == 1.0


def test_training_keeps_the_best_val_word_1nn(cli_run):
    rows = [json.loads(line) for line in (cli_run / "metrics.jsonl").read_text().splitlines()]
    scores = [r["val_word_1nn"] for r in rows if "val_word_1nn" in r]
    assert scores and all(0 <= s <= 1 for s in scores) and (cli_run / "best.safetensors").exists()


def test_low_shot_back_ends_get_enough_steps():
    from avlab.tasks.lipreading.protocol import backend_epochs

    assert backend_epochs(1200, 30, 64, 300) == 30  # 19 steps an epoch: 570 steps already
    assert backend_epochs(12, 30, 64, 300) == 300  # one step an epoch
    assert backend_epochs(120, 30, 64, 300) == 150  # two steps an epoch


def test_fine_tuning_starts_from_the_frozen_back_end(cli_run):
    """LP-FT: before any step (epoch −1) the fine-tuned model is the frozen variant exactly, so
    selection on val can keep it and fine-tuning never scores below a worse-on-val epoch."""
    from avlab.runs import load_run
    from avlab.tasks.lipreading.protocol import eval_dataset, finetune, frozen_features, train_backend

    cfg, method = load_run(cli_run)
    tcfg = cfg.task_config()
    feats = {s: (frozen_features(method, d), d.labels) for s in ("train", "val", "test")
             for d in [eval_dataset(cfg.data, tcfg, s, 0, False)]}
    frozen = train_backend(feats["train"], feats["val"], feats["test"], 6, epochs=3, min_steps=0)
    start = finetune(method, cfg.data, tcfg, 6, epochs=0, workers=0, progress=False, head_state=frozen["state"])
    assert start["epoch"] == -1 and start["val_top1"] == pytest.approx(frozen["val_top1"])
    assert start["test"]["top1"] == pytest.approx(frozen["test"]["top1"])
