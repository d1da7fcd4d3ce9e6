"""``avlab demo`` on the three runs `make run` leaves (one per task) as one real server, driven
through ``gradio_client``: a tab per run, each task's endpoints answering, each run's card naming
its own method and metrics."""
import json
from pathlib import Path

import httpx
import pytest
from gradio_client import Client


@pytest.fixture(scope="module")
def runs(tiny_cmpc_run, tiny_adc_run, tiny_cmac_run):
    return {"voice_face": tiny_cmpc_run, "lip_reading": tiny_adc_run, "sound_localisation": tiny_cmac_run}


@pytest.fixture(scope="module")
def server(runs, tmp_path_factory):
    from types import SimpleNamespace

    from avlab.demo.process import demo_process

    log = tmp_path_factory.mktemp("demo-runs") / "server.log"
    env = {"GRADIO_TEMP_DIR": str(tmp_path_factory.mktemp("demo-runs-temp"))}
    args = ["--max-upload-mb", "1", "--gallery-identities", "8", "--workers", "1"]
    with demo_process(list(runs.values()), log, args, env=env) as (url, port, proc):
        yield SimpleNamespace(url=url, log=log)


@pytest.fixture(scope="module")
def client(server):
    return Client(server.url, verbose=False)


def _first_choice(client, endpoint: str) -> str:
    info = client.view_api(return_format="dict", print_info=False)
    return info["named_endpoints"][endpoint]["parameters"][0]["type"]["enum"][0]


def test_one_page_has_a_tab_and_a_run_card_per_run(client, server, runs):
    endpoints = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert {"/voice_to_face", "/face_to_voice", "/read_lips", "/locate"} <= endpoints
    assert {f"/run_card_{task}" for task in runs} <= endpoints and "/run_card" not in endpoints
    config = httpx.get(server.url + "config", timeout=30).json()
    labels = {c["props"].get("label") for c in config["components"] if c.get("type") == "tabitem"}
    for task, run in runs.items():
        method = json.loads((run / "config.json").read_text())["method"]
        assert f"{task.replace('_', '-')} · {run.name}" in labels
        md, table, status = client.predict(api_name=f"/run_card_{task}")
        assert f"method **{method}**" in md and "eval.json" in status and table["data"]


def test_every_task_answers_in_the_shared_page(client):
    query = _first_choice(client, "/voice_to_face")
    *_, notes = client.predict(query, None, None, api_name="/voice_to_face")
    assert "True match ranked" in notes
    _, table, _, notes = client.predict(_first_choice(client, "/read_lips"), None, api_name="/read_lips")
    assert len(table["data"]) == 5 and "True word" in notes
    _, _, heard, notes = client.predict(_first_choice(client, "/locate"), None, api_name="/locate")
    assert heard["label"] and "Heard as" in notes


def test_no_run_or_data_file_is_served(server, runs):
    for run in runs.values():
        data = Path(json.loads((run / "config.json").read_text())["data"])
        for path in (run / "model.safetensors", run / "eval.json", next(p for p in data.rglob("*") if p.is_file())):
            r = httpx.get(f"{server.url}gradio_api/file={path.resolve()}")
            assert r.status_code == 403, path
