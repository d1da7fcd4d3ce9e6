"""``avlab demo`` as a real server on a free local port, driven through ``gradio_client``: every tab,
rankings checked against the model's own scores, bad uploads answered clearly while the server
keeps serving, and nothing outside the uploads and produced media served."""
import concurrent.futures
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from avlab.cli import build_parser


@pytest.fixture(scope="module")
def client(demo_server):
    return Client(demo_server.url, verbose=False)


@pytest.fixture(scope="module")
def model(tiny_test_embeddings):
    """The model's own embeddings of every unseen-unheard clip, keyed by the demo's clip names."""
    return {f"{c.identity} · {c.video}/{c.utt}": (c, v, f) for c, v, f in tiny_test_embeddings}


def _choices(client) -> list[str]:
    info = client.view_api(return_format="dict", print_info=False)
    param = info["named_endpoints"]["/voice_to_face"]["parameters"][0]
    return list(param["type"]["enum"])


def _name(path: str) -> str:
    _, _, identity, video, utt = Path(path).with_suffix("").parts
    return f"{identity} · {video}/{utt}"


def _check_ranking(table: dict, scores_of, query_identity: str | None):
    """Rows sorted by score, scores equal to the model's, ✓ exactly on the query's identity."""
    rows = table["data"]
    assert table["headers"] == ["rank", "name", "identity", "score", "true match"]
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
    served = np.array([r[3] for r in rows], dtype=float)
    assert np.all(np.diff(served) <= 1e-9), "not sorted best first"
    assert np.allclose(served, [scores_of(r[1]) for r in rows], atol=2e-4)
    assert [r[4] == "✓" for r in rows] == [r[2] == query_identity for r in rows]


def test_the_server_binds_loopback_and_sharing_is_opt_in(demo_server):
    args = build_parser().parse_args(["demo"])
    assert args.host == "127.0.0.1" and args.share is False
    assert f"http://127.0.0.1:{demo_server.port}" in demo_server.log.read_text()


def test_voice_to_face_with_a_test_clip(client, model):
    for query in _choices(client)[:2]:
        q_clip, q_voice, _ = model[_name(query)]
        heard, gallery, table, notes = client.predict(query, None, None, api_name="/voice_to_face")
        _check_ranking(table, lambda name: float(model[name][2] @ q_voice), q_clip.identity)
        assert [g["caption"].split(" · ", 1)[1] for g in gallery] == [r[1] for r in table["data"]]
        heads = [g["caption"].split(" · ")[0].split() for g in gallery]  # "3." "0.742" ["✓"]
        assert [h[0] for h in heads] == [f"{r[0]}." for r in table["data"]]
        assert np.allclose([float(h[1]) for h in heads], [r[3] for r in table["data"]], atol=6e-4)
        assert [h[2:] == ["✓"] for h in heads] == [r[4] == "✓" for r in table["data"]]
        assert all(Path(g["image"]).stat().st_size > 0 for g in gallery) and Path(heard).stat().st_size > 0
        assert "True match ranked" in notes


def test_face_to_voice_with_a_test_clip(client, model):
    query = _choices(client)[-1]
    q_clip, _, q_face = model[_name(query)]
    seen, table, *players, notes = client.predict(query, None, None, api_name="/face_to_voice")
    _check_ranking(table, lambda name: float(model[name][1] @ q_face), q_clip.identity)
    played = [p for p in players if p["visible"]]  # the players come back as updates (value, label, visible)
    assert len(played) == min(5, len(table["data"]))
    assert all(Path(p["value"]).stat().st_size > 1000 for p in played)
    assert [p["label"].split(" · ", 1)[1] for p in played] == [r[1] for r in table["data"][:len(played)]]
    assert Path(seen).stat().st_size > 0 and "True match ranked" in notes


def test_uploads_rank_like_the_model_scores_them(client, model, tiny_set, tmp_path):
    """The test clip uploaded as a voice scores like the test clip (same preprocessing); faces
    uploaded as a still and a video are ranked and say how they were cropped."""
    import cv2

    query = _choices(client)[0]
    q_clip, q_voice, _ = model[_name(query)]
    _, _, table, notes = client.predict(None, handle_file(str(Path(tiny_set) / query)), None, api_name="/voice_to_face")
    _check_ranking(table, lambda name: float(model[name][2] @ q_voice), None)
    assert "unknown for uploads" in notes

    others = [c for c, _, _ in model.values() if c.identity != q_clip.identity][:2]
    still = tmp_path / "still.png"
    cv2.imwrite(str(still), _frame(tiny_set, others[0]))  # BGR for OpenCV
    video = Path(tiny_set) / others[1].path
    _, gallery, table, notes = client.predict(query, None, [handle_file(str(still)), handle_file(str(video))],
                                              api_name="/voice_to_face")
    assert sorted(r[1] for r in table["data"]) == sorted(["still.png", video.name])
    assert all(r[4] == "" for r in table["data"])  # an upload's identity is unknown
    assert "'still.png' (image)" in notes and "video's middle frame" in notes
    assert len(gallery) == 2

    seen, table, *players, notes = client.predict(None, handle_file(str(still)), [handle_file(str(video))],
                                                  api_name="/face_to_voice")
    assert [r[1] for r in table["data"]] == [video.name]
    assert [p["visible"] for p in players] == [True, False, False, False, False]


def _frame(tiny_set, clip) -> np.ndarray:
    from avlab.data import media

    return media.read_frames(Path(tiny_set) / clip.path, [clip.n_frames // 2])[0][:, :, ::-1]


def test_run_card_shows_method_data_and_the_eval_metrics(client, demo_server):
    md, table, status = client.predict(api_name="/run_card")
    config = json.loads((demo_server.run / "config.json").read_text())
    result = json.loads((demo_server.run / "eval.json").read_text())
    assert f"method **{config['method']}**" in md and Path(config["data"]).name in md
    assert str(Path(config["data"]).parent) not in md  # no host paths in a shareable page
    rows = {r[0]: r for r in table["data"]}
    col = table["headers"].index("unseen-unheard")
    auc = result["metrics"]["unseen_unheard"]["verification"]["U"]["auc"]
    assert rows["verification/U/auc"][col] == pytest.approx(auc, abs=1e-3)
    assert "eval.json" in status


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "garbage.mp4").write_bytes(bytes(range(256)) * 40)
    (d / "empty.wav").write_bytes(b"")
    (d / "notes.txt").write_text("not media at all")
    (d / "notes.wav").write_text("a text file with an audio name " * 20)
    (d / "huge.wav").write_bytes(b"\0" * (2 * 1024 * 1024))  # the test server's limit is 1 MB
    return d


@pytest.mark.parametrize("api, slot, name, message", [
    ("/voice_to_face", "query", "garbage.mp4", "voice 'garbage.mp4' cannot be used: cannot open container"),
    ("/face_to_voice", "query", "garbage.mp4", "face 'garbage.mp4' cannot be used: cannot open container"),
    ("/voice_to_face", "query", "empty.wav", "voice 'empty.wav' is empty"),
    ("/voice_to_face", "query", "notes.txt", "unsupported type .txt"),
    ("/voice_to_face", "query", "notes.wav", "voice 'notes.wav' cannot be used"),
    ("/face_to_voice", "query", "notes.txt", "Invalid file type"),
    ("/voice_to_face", "gallery", "notes.txt", "Invalid file type"),
    ("/face_to_voice", "gallery", "empty.wav", "voice 'empty.wav' is empty"),
])
def test_bad_uploads_get_clear_errors_and_the_server_keeps_serving(client, bad_files, api, slot, name, message):
    upload = handle_file(str(bad_files / name))
    args = (None, upload, None) if slot == "query" else (_choices(client)[0], None, [upload])
    with pytest.raises(AppError) as err:
        client.predict(*args, api_name=api)
    text = str(err.value)
    assert message in text
    assert "Traceback" not in text and "/tmp" not in text and "File \"" not in text
    _, _, table, _ = client.predict(_choices(client)[0], None, None, api_name="/voice_to_face")
    assert table["data"]  # still serving


def test_a_huge_upload_is_refused_by_the_client_and_by_the_server(client, demo_server, bad_files):
    with pytest.raises(ValueError, match="exceeds the maximum file size"):
        client.predict(None, handle_file(str(bad_files / "huge.wav")), None, api_name="/voice_to_face")
    with open(bad_files / "huge.wav", "rb") as f:  # a client that ignores the advertised limit
        r = httpx.post(demo_server.url + "gradio_api/upload", files={"files": ("huge.wav", f, "audio/wav")}, timeout=60)
    assert r.status_code == 413 and "maximum allowed size" in r.text
    assert client.predict(_choices(client)[0], None, None, api_name="/voice_to_face")[2]["data"]


def test_nothing_outside_uploads_and_produced_media_is_served(client, demo_server, tiny_set):
    for path in [demo_server.run / "model.safetensors", demo_server.run / "config.json",
                 next(Path(tiny_set).rglob("*.mp4")), Path("/etc/passwd"), Path(__file__)]:
        r = httpx.get(f"{demo_server.url}gradio_api/file={path.resolve()}")
        assert r.status_code == 403, path
    heard, _, _, _ = client.predict(_choices(client)[0], None, None, api_name="/voice_to_face")
    assert Path(heard).stat().st_size > 0  # produced media are served (the client downloaded it)


def test_concurrent_requests_queue_and_all_succeed(client, demo_server):
    clients = [Client(demo_server.url, verbose=False) for _ in range(3)]
    queries = _choices(client)
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(c.predict, queries[i % len(queries)], None, None, api_name="/voice_to_face")
                   for i, c in enumerate(clients * 2)]
        results = [f.result(timeout=120) for f in futures]
    assert all(r[2]["data"] for r in results)
