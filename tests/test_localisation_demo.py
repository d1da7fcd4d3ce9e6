"""The sound-localisation demo tab ("Where is the sound?"): its maps are the protocol's own
(``attention.npz``) and its class the protocol's audio probe; ``avlab demo`` on an evaluated CMAC
run, as a real server driven through ``gradio_client``, answers a test clip and the same clip
uploaded alike, and bad uploads with a clear message while it keeps serving."""
import json
import shutil
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from avlab.tasks.localisation.demo import (DISPLAY_SIDE, LocalisationTabs, Localiser, chance_warnings, heatmap_overlay,
                                           spectrogram_image)

MAPS = ("beta_v", "alpha_v", "alpha_a", "beta_a")


@pytest.fixture(scope="module")
def localiser(tiny_cmac_run) -> Localiser:
    return Localiser(tiny_cmac_run)


@pytest.fixture(scope="module")
def saved(tiny_cmac_run) -> dict:
    """The protocol's per-clip outputs (``attention.npz``) and figures (``eval.json``)."""
    with np.load(tiny_cmac_run / "attention.npz") as f:
        att = {k: f[k] for k in f.files}
    return {"att": att, "row": {p: i for i, p in enumerate(att["paths"].tolist())},
            "eval": json.loads((tiny_cmac_run / "eval.json").read_text())}


def test_the_maps_are_the_protocols_and_the_class_is_its_audio_probes(localiser, saved):
    att, row = saved["att"], saved["row"]
    paths = [p for _, p in localiser.test_clip_choices()]
    assert sorted(paths) == sorted(row)  # the tiny set's 8 test clips, all of them scored by the protocol
    right = []
    for path in paths:
        located = localiser.locate(test_clip=path)
        i = row[path]
        for name in MAPS:  # saved as float16
            np.testing.assert_allclose(located.maps[name], att[name][i].astype(np.float32), rtol=2e-3, atol=1e-5)
        assert located.true_class == att["labels"][i]
        assert (located.boxes is not None) == bool(np.isfinite(att["boxes"][i]).all())
        right.append(located.classes[0] == located.true_class)
    assert np.mean(right) == pytest.approx(saved["eval"]["metrics"]["test"]["probe"]["linear"]["audio"])


def test_the_kept_probe_gives_sklearns_probabilities(localiser):
    """Against an independent refit of the protocol's logistic regression on its train embeddings."""
    from sklearn.linear_model import LogisticRegression

    from avlab.registry import TASKS
    from avlab.tasks.localisation.protocol import run_clips

    cfg, task = localiser.cfg, TASKS.get(localiser.cfg.task)
    train, test = (task.dataset(cfg.data, cfg.task_config(), (split,), train=False, workers=0, progress=False)
                   for split in ("train", "test"))
    x_train, x_test = (run_clips(localiser.method, ds, progress=False)["emb.audio"] for ds in (train, test))
    lin = LogisticRegression(max_iter=2000, C=10.0).fit(x_train, [train.label_of[c.label] for c in train.clips])
    for path, expected in zip(test.sample_names(), lin.predict_proba(x_test)):
        located = localiser.locate(test_clip=path)
        got = dict(zip(located.classes, located.probabilities))
        assert list(got) == sorted(got, key=got.get, reverse=True)
        assert got == pytest.approx({train.classes[c]: p for c, p in zip(lin.classes_, expected)}, abs=1e-4)


def test_a_method_without_attention_shows_its_similarity_map(tiny_sounding_objects, tmp_path_factory):
    from avlab.eval.run_eval import evaluate_run
    from avlab.train import TrainConfig, train

    run = tmp_path_factory.mktemp("runs") / "cid"
    train(TrainConfig(method="cid", data=str(tiny_sounding_objects), out=str(run), epochs=1, batch_size=8,
                      workers=0, threads=1), progress=False)
    evaluate_run(run, progress=False, device="cpu", n_boot=20)
    localiser = Localiser(run)
    path = localiser.test_clip_choices()[0][1]
    located = localiser.locate(test_clip=path)
    with np.load(run / "attention.npz") as att:
        i = att["paths"].tolist().index(path)
        np.testing.assert_allclose(located.maps["beta_v"], att["beta_v"][i].astype(np.float32), rtol=2e-3, atol=1e-5)
    assert set(located.maps) == {"beta_v"} and located.classes


def test_a_run_never_evaluated_shows_maps_and_says_to_evaluate(tiny_cmac_run, tmp_path):
    run = tmp_path / "not-evaluated"
    shutil.copytree(tiny_cmac_run, run, ignore=shutil.ignore_patterns("eval.json", "class_probe.npz", "attention.npz"))
    localiser = Localiser(run)
    assert "run `avlab eval --run not-evaluated` first" in LocalisationTabs(localiser).intro
    located = localiser.locate(test_clip=localiser.test_clip_choices()[0][1])
    assert located.maps["beta_v"].shape == (8, 8) and located.classes == [] and located.label() is None


def test_chance_warnings_follow_the_intervals():
    result = {"n_test_clips": 100, "metrics": {"test": {"localisation": {"beta_v": {"ciou@0.5": 0.6}},
                                                        "probe": {"linear": {"audio": 0.9}}}},
              "chance": {"test": {"localisation": {"centre_prior": {"ciou@0.5": 0.2}, "uniform": {"ciou@0.5": 0.0}},
                                  "probe": {"classes": 0.25}}},
              "ci": {"test": {"localisation": {"beta_v": {"ciou@0.5": [0.5, 0.7]}}}}}
    assert chance_warnings(result) == [] and chance_warnings(None) == []
    result["ci"]["test"]["localisation"]["beta_v"]["ciou@0.5"] = [0.15, 0.7]
    result["metrics"]["test"]["probe"]["linear"]["audio"] = 0.3  # 30 of 100 right: p ≈ 0.15 against 1/4
    warned = chance_warnings(result)
    assert len(warned) == 2 and "β_v localises no better than chance" in warned[0] and "0.200" in warned[0]
    assert "The class is no better than chance" in warned[1]


# --- the real server --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tiny_cmac_run, tmp_path_factory):
    """``avlab demo`` on the tiny CMAC run (1 MB upload limit)."""
    from types import SimpleNamespace

    from avlab.demo.process import demo_process

    log = tmp_path_factory.mktemp("loc-demo") / "server.log"
    env = {"GRADIO_TEMP_DIR": str(tmp_path_factory.mktemp("loc-gradio-temp"))}
    with demo_process(tiny_cmac_run, log, ["--max-upload-mb", "1", "--workers", "1"], env=env) as (url, port, proc):
        yield SimpleNamespace(url=url, run=tiny_cmac_run, log=log, proc=proc)


@pytest.fixture(scope="module")
def client(server):
    return Client(server.url, verbose=False)


def _choices(client) -> list[str]:
    info = client.view_api(return_format="dict", print_info=False)
    return list(info["named_endpoints"]["/locate"]["parameters"][0]["type"]["enum"])


def _pixels(path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def test_a_test_clip_gets_its_heatmap_spectrogram_class_and_notes(client, localiser, saved):
    choices = _choices(client)
    assert len(choices) == 8
    for path in choices[::3]:
        frame, spectrum, heard, notes = client.predict(path, None, api_name="/locate")
        located = localiser.locate(test_clip=path)
        assert _pixels(frame).shape == (DISPLAY_SIDE, DISPLAY_SIDE, 3)
        assert _pixels(spectrum).shape[1] > _pixels(spectrum).shape[0] > 200
        assert heard["label"] == located.classes[0]
        assert [c["label"] for c in heard["confidences"]] == located.classes[:5]
        assert f"**Heard as {located.classes[0]}**" in notes
        assert ("β_v against the white box: cIoU" in notes) == (located.boxes is not None)
        assert all(w in notes for w in chance_warnings(saved["eval"]))


def test_an_uploaded_clip_is_answered_like_the_test_clip(client, server, localiser):
    """The same maps over the same inputs and the same class; only what the data knows (the box,
    the bands) is missing from the upload's pictures."""
    path = _choices(client)[0]
    picked = client.predict(path, None, api_name="/locate")
    uploaded = client.predict(None, handle_file(str(localiser.data / path)), api_name="/locate")
    located = localiser.locate(test_clip=path)
    unknown = replace(located, boxes=None, bands=None)
    assert located.boxes and located.bands
    assert np.array_equal(_pixels(picked[0]), heatmap_overlay(located.frame, located.maps["beta_v"], located.boxes))
    assert np.array_equal(_pixels(uploaded[0]), heatmap_overlay(unknown.frame, unknown.maps["beta_v"]))
    assert np.array_equal(_pixels(picked[1]), spectrogram_image(located, localiser.mel))
    assert np.array_equal(_pixels(uploaded[1]), spectrogram_image(unknown, localiser.mel))
    assert uploaded[2] == picked[2]
    assert "unknown for uploads" in uploaded[3]
    assert f"video '{Path(path).name}': 64×64, 1.0 s; its middle frame resized to 64×64 and its first 1 s" in uploaded[3]


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("loc-bad")
    (d / "notes.mp4").write_text("a text file with a video name " * 20)
    (d / "empty.mp4").write_bytes(b"")
    (d / "notes.txt").write_text("not media at all")
    (d / "huge.mp4").write_bytes(b"\0" * (2 * 1024 * 1024))  # the server's limit is 1 MB
    return d


def _still_serving(client):
    _, _, heard, _ = client.predict(_choices(client)[0], None, api_name="/locate")
    assert heard["label"]


@pytest.mark.parametrize("name, message", [
    ("notes.mp4", "video 'notes.mp4' cannot be used: cannot open container"),
    ("empty.mp4", "video 'empty.mp4' is empty"),
    ("notes.txt", "Invalid file type"),
])
def test_bad_uploads_get_clear_errors_and_the_server_keeps_serving(client, bad_files, name, message):
    with pytest.raises(AppError) as err:
        client.predict(None, handle_file(str(bad_files / name)), api_name="/locate")
    text = str(err.value)
    assert message in text
    assert "Traceback" not in text and "/tmp" not in text and "File \"" not in text
    _still_serving(client)


def test_an_oversize_upload_is_refused_by_the_client_and_by_the_server(client, server, bad_files):
    with pytest.raises(ValueError, match="exceeds the maximum file size"):
        client.predict(None, handle_file(str(bad_files / "huge.mp4")), api_name="/locate")
    with open(bad_files / "huge.mp4", "rb") as f:  # a client that ignores the advertised limit
        r = httpx.post(server.url + "gradio_api/upload", files={"files": ("huge.mp4", f, "video/mp4")}, timeout=60)
    assert r.status_code == 413 and "maximum allowed size" in r.text
    _still_serving(client)
    assert server.proc.poll() is None and "Traceback" not in server.log.read_text()
