"""Shared fixtures: a tiny talking-faces set generated once per test session."""
import os

import pytest

from avlab.data.synth.talking_faces import TalkingFacesConfig, generate

TINY = dict(identities=12, videos_per_id=2, utts_per_video=3, size=48, seed=7)


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Index and clip caches go to a per-session folder, never the user's ~/.cache."""
    os.environ["AVLAB_CACHE"] = str(tmp_path_factory.mktemp("avlab-cache"))
    yield


@pytest.fixture(scope="session")
def tiny_cfg():
    return TalkingFacesConfig(**TINY)


@pytest.fixture(scope="session")
def tiny_set(tmp_path_factory, tiny_cfg):
    return generate(tiny_cfg, tmp_path_factory.mktemp("tiny") / "talking-faces", workers=2, progress=False)


@pytest.fixture(scope="session")
def tiny_cmpc_run(tmp_path_factory, tiny_set):
    """A CMPC run on the tiny set that clustered and was evaluated (clusters, embeddings, eval.json)."""
    from avlab.eval.run_eval import evaluate_run
    from avlab.train import TrainConfig, train

    out = tmp_path_factory.mktemp("runs") / "cmpc"
    cfg = TrainConfig(method="cmpc", data=str(tiny_set), out=str(out), epochs=2, batch_size=8, face_size=48,
                      crop_seconds=1.0, workers=1,
                      method_args={"cluster_warmup_epochs": 1, "num_prototypes": [3, 5]})
    train(cfg, progress=False)
    evaluate_run(out, progress=False)
    return out


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def demo_server(tiny_cmpc_run, tmp_path_factory):
    """``avlab demo`` on the tiny CMPC run as a real server on a free port (1 MB upload limit)."""
    import subprocess
    import sys
    import time
    from types import SimpleNamespace

    import httpx

    port = free_port()
    log_path = tmp_path_factory.mktemp("demo") / "server.log"
    env = dict(os.environ, GRADIO_TEMP_DIR=str(tmp_path_factory.mktemp("gradio-temp")))
    cmd = [sys.executable, "-m", "avlab.cli", "demo", "--run", str(tiny_cmpc_run), "--port", str(port),
           "--max-upload-mb", "1", "--gallery-identities", "8", "--workers", "1"]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 180
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the demo server exited:\n{log_path.read_text()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.time() > deadline:
            proc.kill()
            raise RuntimeError(f"the demo server did not start in 180 s:\n{log_path.read_text()}")
        time.sleep(0.5)
    yield SimpleNamespace(url=url, port=port, run=tiny_cmpc_run, log=log_path, proc=proc)
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
