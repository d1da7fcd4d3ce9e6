"""The lip-reading demo tab: the back-end ``avlab eval`` saves reproduces the protocol's logits, and
``avlab demo`` on an evaluated ADC-SSL run, as a real server driven through ``gradio_client``,
reads test clips and uploads exactly as the protocol scores them, names the top word's
homophenes, and answers bad uploads with a clear message while it keeps serving."""
import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from avlab.data.uploads import UploadError
from avlab.tasks.lipreading.demo import LipReader, LipReadingTabs, evaluated_weights, load_backend


@pytest.fixture(scope="module")
def protocol_logits(tiny_adc_run) -> dict:
    """{test clip path: the protocol's frozen back-end logits}, from ``lipreading.npz``."""
    with np.load(tiny_adc_run / "lipreading.npz") as out:
        return {"words": out["words"].tolist(), **dict(zip(out["paths"].tolist(), out["logits"]))}


@pytest.fixture(scope="module")
def vocabulary(tiny_adc_run) -> dict:
    cfg = json.loads((tiny_adc_run / "config.json").read_text())
    return json.loads((Path(cfg["data"]) / "latents" / "vocabulary.json").read_text())


def test_the_saved_backend_reproduces_the_protocols_test_logits(tiny_adc_run, protocol_logits):
    from avlab.runs import load_run
    from avlab.tasks.lipreading.protocol import eval_dataset, frozen_features

    cfg, method = load_run(tiny_adc_run, evaluated_weights(tiny_adc_run))
    backend, words = load_backend(tiny_adc_run)
    assert words == protocol_logits["words"]
    ds = eval_dataset(cfg.data, cfg.task_config(), "test", workers=0, progress=False)
    with torch.no_grad():
        logits = backend(torch.as_tensor(frozen_features(method, ds))).numpy()
    expected = np.stack([protocol_logits[p] for p in ds.sample_names()])
    np.testing.assert_allclose(logits, expected, atol=1e-5)


def test_a_run_never_evaluated_says_so(tiny_adc_run, tmp_path):
    run = tmp_path / "not-evaluated"
    shutil.copytree(tiny_adc_run, run, ignore=shutil.ignore_patterns("lipreading_backend.safetensors"))
    reader = LipReader(run)
    assert "evaluate it first (`avlab eval --run not-evaluated`)" in LipReadingTabs(reader).intro
    with pytest.raises(UploadError, match="no word classifier yet"):
        reader.read(test_clip=reader.test_clip_choices()[0][1])


@pytest.fixture(scope="module")
def server(tiny_adc_run, tmp_path_factory):
    """``avlab demo`` on the tiny ADC-SSL run (1 MB upload limit)."""
    from types import SimpleNamespace

    from avlab.demo.process import demo_process

    log = tmp_path_factory.mktemp("lip-demo") / "server.log"
    env = {"GRADIO_TEMP_DIR": str(tmp_path_factory.mktemp("lip-gradio-temp"))}
    with demo_process(tiny_adc_run, log, ["--max-upload-mb", "1", "--workers", "1"], env=env) as (url, port, proc):
        yield SimpleNamespace(url=url, run=tiny_adc_run, log=log, proc=proc)


@pytest.fixture(scope="module")
def client(server):
    return Client(server.url, verbose=False)


def _choices(client) -> list[str]:
    info = client.view_api(return_format="dict", print_info=False)
    return list(info["named_endpoints"]["/read_lips"]["parameters"][0]["type"]["enum"])


def _expected_rows(logits: np.ndarray, words: list[str]) -> list[tuple[str, float]]:
    """(word, probability) of the five likeliest words under the protocol's logits."""
    p = torch.softmax(torch.as_tensor(logits), 0).numpy()
    return [(words[i], float(p[i])) for i in np.argsort(-p, kind="stable")[:5]]


def _check_reading(table: dict, expected: list[tuple[str, float]], true_word: str | None):
    rows = table["data"]
    assert table["headers"] == ["rank", "word", "probability", "true word"]
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5]
    assert [r[1] for r in rows] == [w for w, _ in expected]
    probs = np.array([r[2] for r in rows], dtype=float)
    assert np.allclose(probs, [p for _, p in expected], atol=1e-4)
    assert np.all(np.diff(probs) <= 0) and probs.min() >= 0 and probs.sum() <= 1 + 1e-3
    assert [r[3] == "✓" for r in rows] == [r[1] == true_word for r in rows]


def _check_homophenes(md: str, top: str, vocabulary: dict):
    """The words listed are exactly the others of the top word's group in ``vocabulary.json``."""
    group = next((g for g in vocabulary["homophenes"] if top in g), [top])
    listed = md.split(f"**Homophenes of {top}**: ", 1)[1].split(" — ")[0]
    assert listed.split(", ") == [w for w in group if w != top] or (len(group) == 1 and listed == "none")


def test_a_test_clip_reads_as_the_protocol_scored_it(client, protocol_logits, vocabulary):
    choices = _choices(client)
    assert len(choices) == 18  # the tiny set's test split: 6 words × 3 clips
    for path in choices[::7]:
        strip, table, homophenes, notes = client.predict(path, None, api_name="/read_lips")
        true_word = Path(path).parts[-3]
        _check_reading(table, _expected_rows(protocol_logits[path], protocol_logits["words"]), true_word)
        _check_homophenes(homophenes, table["data"][0][1], vocabulary)
        assert f"True word {true_word} ranked" in notes
        with Image.open(strip) as img:  # 29 frames of the 20² centre crop, enlarged ×4, 2-px gaps
            assert img.size == (29 * 80 + 28 * 2, 80)


def test_an_uploaded_clip_reads_like_the_test_clip(client, server, protocol_logits, vocabulary):
    path = _choices(client)[0]
    data = Path(json.loads((server.run / "config.json").read_text())["data"])
    strip, table, homophenes, notes = client.predict(None, handle_file(str(data / path)), api_name="/read_lips")
    _check_reading(table, _expected_rows(protocol_logits[path], protocol_logits["words"]), None)
    _check_homophenes(homophenes, table["data"][0][1], vocabulary)
    assert "unknown for uploads" in notes and f"'{Path(path).name}': 32×32 frames, mouth ROI: the whole frame" in notes
    assert Path(strip).stat().st_size > 0


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("lip-bad")
    (d / "notes.mp4").write_text("a text file with a video name " * 20)
    (d / "empty.mp4").write_bytes(b"")
    (d / "notes.txt").write_text("not media at all")
    (d / "huge.mp4").write_bytes(b"\0" * (2 * 1024 * 1024))  # the server's limit is 1 MB
    return d


def _still_serving(client):
    _, table, _, _ = client.predict(_choices(client)[0], None, api_name="/read_lips")
    assert len(table["data"]) == 5


@pytest.mark.parametrize("name, message", [
    ("notes.mp4", "video 'notes.mp4' cannot be used: cannot open container"),
    ("empty.mp4", "video 'empty.mp4' is empty"),
    ("notes.txt", "Invalid file type"),
])
def test_bad_uploads_get_clear_errors_and_the_server_keeps_serving(client, bad_files, name, message):
    with pytest.raises(AppError) as err:
        client.predict(None, handle_file(str(bad_files / name)), api_name="/read_lips")
    text = str(err.value)
    assert message in text
    assert "Traceback" not in text and "/tmp" not in text and "File \"" not in text
    _still_serving(client)


def test_an_oversize_upload_is_refused_by_the_client_and_by_the_server(client, server, bad_files):
    with pytest.raises(ValueError, match="exceeds the maximum file size"):
        client.predict(None, handle_file(str(bad_files / "huge.mp4")), api_name="/read_lips")
    with open(bad_files / "huge.mp4", "rb") as f:  # a client that ignores the advertised limit
        r = httpx.post(server.url + "gradio_api/upload", files={"files": ("huge.mp4", f, "video/mp4")}, timeout=60)
    assert r.status_code == 413 and "maximum allowed size" in r.text
    _still_serving(client)
    assert server.proc.poll() is None and "Traceback" not in server.log.read_text()
