"""Data parallelism on CPU with gloo, 2 processes under torchrun: one step equals one process on
the same global batch (loss, every gradient, the memory banks), and a 2-process CMPC run trains,
clusters, checkpoints, resumes and evaluates end to end."""
import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from avlab import ddp_check

pytestmark = pytest.mark.slow


def torchrun(*args, timeout=600):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *map(str, args)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.mark.parametrize("name", ["cid", "cmpc", "supervised", "cmac"])
def test_one_step_on_two_processes_equals_one_process_on_the_global_batch(name, tmp_path):
    torchrun("-m", "avlab.ddp_check", tmp_path / "ddp.pt", name)
    ddp = torch.load(tmp_path / "ddp.pt")
    method = ddp_check.make(name)
    single = ddp_check.one_step(method, ddp_check.global_batch(name), method.training_step)
    assert single.keys() == ddp.keys() and len([k for k in single if k.startswith("grad.")]) > 10
    # float32 sums in another order: measured agreement ~2e-6 of each tensor's largest entry; the
    # bar is 1e-5 of it (elementwise relative error is meaningless for entries near zero).
    for k in single:
        scale = single[k].abs().max().item()
        # The floor covers gradients that are zero in exact arithmetic and float noise here (CMAC's
        # attention scorer bias: a softmax ignores a shift, its gradient is ~1e-8 of rounding).
        assert (ddp[k] - single[k]).abs().max().item() <= 1e-5 * scale + 1e-7, k
    assert ddp_check.compare({k: v for k, v in single.items() if v.abs().max() > 1e-6},
                             {k: v for k, v in ddp.items() if single[k].abs().max() > 1e-6}) < 1e-5


def test_a_two_process_cmpc_run_trains_clusters_checkpoints_resumes_and_evaluates(tiny_set, tmp_path):
    common = ["train", "--nproc", "2", "--method", "cmpc", "--data", tiny_set, "--epochs", "2", "--batch-size", "8",
              "--face-size", "48", "--workers", "0", "--checkpoint-every", "2", "--cluster-warmup-epochs", "1",
              "--num-prototypes", "3", "5", "--quiet"]

    def avlab(*args):
        done = subprocess.run([sys.executable, "-m", "avlab", *map(str, args)], capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    avlab(*common, "--out", tmp_path / "full")
    avlab(*common, "--out", tmp_path / "cut", "--stop-after-steps", "3")  # "killed"; checkpoint at step 2
    assert not (tmp_path / "cut" / "model.safetensors").exists()
    avlab(*common, "--out", tmp_path / "cut", "--resume", "--eval")
    full, cut = load_file(str(tmp_path / "full" / "model.safetensors")), load_file(str(tmp_path / "cut" / "model.safetensors"))
    assert all(torch.equal(full[k], cut[k]) for k in full)
    metrics = [json.loads(l) for l in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [0, 1] and all(m["processes"] == 2 for m in metrics)
    assert "proto_v2f" in metrics[1] and (tmp_path / "cut" / "clusters.safetensors").exists()
    assert "verification" in json.loads((tmp_path / "cut" / "eval.json").read_text())["metrics"]["unseen_unheard"]
