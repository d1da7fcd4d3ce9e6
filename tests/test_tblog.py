"""TensorBoard event files of a run (scalars, projector with face sprites) and `avlab tb`."""
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from avlab import tblog
from avlab.tasks.voiceface import projector


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_event_log_writes_scalars_and_skips_non_numbers(tmp_path):
    with tblog.EventLog(tmp_path) as log:
        log.scalars(10, {"train/loss": 1.5, "train/lr": 2e-3, "train/clips_per_s": 80, "note": "x",
                         "cluster_num_prototypes": [3, 5], "bad": float("nan"), "flag": True})
        log.scalars(20, {"train/loss": 1.25, "val/matching_1to2": 0.6})
    got = _scalars(tmp_path / "tb")
    assert set(got) == {"train/loss", "train/lr", "train/clips_per_s", "val/matching_1to2"}
    assert got["train/loss"] == [(10, 1.5), (20, 1.25)]


def test_event_log_embedding_with_sprites(tmp_path):
    feats = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    thumbs = np.zeros((6, 8, 8, 3), np.uint8)
    with tblog.EventLog(tmp_path) as log:
        log.embedding(feats, [["voice", "a"]] * 3 + [["face", "b"]] * 3, thumbs, tag="emb", header=["modality", "id"])
    config = (tmp_path / "tb" / "projector_config.pbtxt").read_text()
    assert "sprite" in config and "single_image_dim: 8" in config
    meta = next((tmp_path / "tb").rglob("metadata.tsv")).read_text().splitlines()
    assert meta[0] == "modality\tid" and len(meta) == 7


def test_epoch_scalars_name_validation_speed_and_losses():
    record = {"epoch": 3, "step": 40, "lr": 1e-3, "loss": 2.0, "inst_v2f": 1.0, "val_verification_auc": 0.7,
              "best_epoch": 3, "cluster_clustered": 1, "seconds": 2.5, "clips_per_s": 64.0, "processes": 1}
    assert tblog.epoch_scalars(record) == {
        "train/lr": 1e-3, "train/loss": 2.0, "train/inst_v2f": 1.0, "val/verification_auc": 0.7,
        "cluster/clustered": 1, "speed/seconds": 2.5, "speed/clips_per_s": 64.0}


def test_scalars_from_metrics_backfills_once(tiny_cmpc_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_cmpc_run, run, ignore=shutil.ignore_patterns("tb", "umap"))
    tblog.scalars_from_metrics(run)
    records = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    got = _scalars(run / "tb")
    assert [s for s, _ in got["train/loss"]] == [r["step"] for r in records]
    assert {"train/lr", "speed/clips_per_s"} <= set(got)
    tblog.scalars_from_metrics(run)  # a run with events is left alone
    assert len(list((run / "tb").glob("events.out.tfevents.*"))) == 1


def test_tblog_imports_no_task():
    """The loop imports tblog; a task's code (the projector's protocol) must not come with it."""
    code = "import sys, avlab.tblog; print(sorted(m for m in sys.modules if m.startswith('avlab.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "avlab.tasks" not in out and "avlab.tblog" in out


def test_write_projector_of_the_test_embeddings(tiny_cmpc_run):
    emb = np.load(tiny_cmpc_run / "embeddings.npz")
    n = int((emb["split"] == "unseen_unheard").sum())
    for _ in range(2):  # rewriting replaces, never appends a second config entry
        out = projector.write_projector(tiny_cmpc_run, thumb=16)
    config = (out / "projector_config.pbtxt").read_text()
    assert config.count("embeddings {") == 1
    meta = next(out.rglob("metadata.tsv")).read_text().splitlines()
    assert meta[0].split("\t") == ["modality", "identity", "split", "gender", "path"]
    assert len(meta) == 1 + 2 * n and {l.split("\t")[0] for l in meta[1:]} == {"voice", "face"}
    assert {l.split("\t")[3] for l in meta[1:]} <= {"female", "male"}
    from PIL import Image

    sprite = Image.open(next(out.rglob("sprite.png")))
    side = int(np.ceil(np.sqrt(2 * n)))
    assert sprite.size == (16 * side, 16 * side)


def test_tensorboard_command_names_each_run(tiny_cmpc_run, tmp_path):
    (tmp_path / "a" / "cid").mkdir(parents=True)
    (tmp_path / "a" / "cid" / "metrics.jsonl").write_text("")
    (tmp_path / "a" / "notes").mkdir()
    runs = tblog.expand_runs([tmp_path / "a", tiny_cmpc_run])  # a folder of runs, and a run
    assert [r.name for r in runs] == ["cid", "cmpc"]
    cmd = tblog.tensorboard_command([tmp_path / "a", tiny_cmpc_run], port=6543)
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and cmd[cmd.index("--port") + 1] == "6543"
    logdir = Path(cmd[cmd.index("--logdir") + 1])
    assert sorted(p.name for p in logdir.iterdir()) == ["cid", "cmpc"]
    assert (logdir / "cmpc").resolve() == (tiny_cmpc_run / "tb").resolve()
    with pytest.raises(FileNotFoundError, match="holds no run"):
        tblog.expand_runs([tmp_path / "a" / "notes"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


@pytest.mark.slow
def test_avlab_tb_serves_scalars_and_the_projector(tiny_cmpc_run, tmp_path):
    projector.write_projector(tiny_cmpc_run, thumb=16)
    port = _free_port()
    log = open(tmp_path / "tb.log", "w")
    proc = subprocess.Popen([str(Path(__import__("sys").executable).parent / "avlab"), "tb", str(tiny_cmpc_run),
                             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline, runs = time.time() + 90, None
        while time.time() < deadline:
            try:
                runs = _get(f"{base}/data/runs")
                if "cmpc" in runs:
                    break
            except OSError:
                pass
            time.sleep(1)
        assert runs and {"cmpc", "cmpc/projector"} <= set(runs), (tmp_path / "tb.log").read_text()
        assert "train/loss" in _get(f"{base}/data/plugin/scalars/tags")["cmpc"]
        assert _get(f"{base}/data/plugin/projector/runs") == ["cmpc/projector"]
    finally:
        proc.terminate()  # avlab tb became tensorboard (exec): one process to stop
        proc.wait(20)
        log.close()
