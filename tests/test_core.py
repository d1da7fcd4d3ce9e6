"""The core that hosts every task: registries, task detection, the loop's DataLoader workers,
run-folder migration, devices — and a toy method registered here that runs through the loop."""
import json
from dataclasses import dataclass

import pytest
import torch
from safetensors.torch import load_file, save_file

from avlab.data.loader import make_loader
from avlab.data.manifest import MANIFEST, detect_task
from avlab.device import resolve_device
from avlab.methods import TwoStreamMethod, register_method
from avlab.registry import METHODS, TASKS, Registry
from avlab.runs import load_run
from avlab.train import TrainConfig, train

TINY = dict(batch_size=8, task_args={"face_size": 48, "crop_seconds": 1.0})


def test_registry_names_what_is_registered_and_refuses_duplicates():
    reg = Registry("widget")
    reg.register("a")(type("A", (), {}))
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("a")(type("B", (), {}))
    with pytest.raises(KeyError, match="unknown widget 'b'; registered: a"):
        reg.get("b")
    assert "voice-face" in TASKS and {"cid", "cmpc", "supervised"} <= set(METHODS.names())


def test_the_data_folder_names_its_task(tiny_set, tmp_path):
    assert json.loads((tiny_set / MANIFEST).read_text())["task"] == "voice-face"
    assert detect_task(tiny_set) == "voice-face"
    layout_only = tmp_path / "vox"
    (layout_only / "dev" / "mp4").mkdir(parents=True)
    assert detect_task(layout_only) == "voice-face"  # a user's VoxCeleb root has no manifest
    (tmp_path / "other").mkdir()
    with pytest.raises(ValueError, match="no task recognises its layout"):
        detect_task(tmp_path / "other")
    (tmp_path / "other" / MANIFEST).write_text('{"task": "juggling"}')
    with pytest.raises(KeyError, match="unknown task 'juggling'"):
        detect_task(tmp_path / "other")


def _loader_batches(ds, workers):
    loader, sampler = make_loader(ds, 4, seed=3, workers=workers)
    out = []
    for epoch in (0, 1):
        sampler.set_epoch(epoch, start_batch=1 if epoch else 0)
        out += [b for b in loader]
    return out


def test_the_same_batches_with_0_1_or_2_workers(tiny_set):
    ds = TASKS.get("voice-face").train_dataset(tiny_set, TASKS.get("voice-face").Config(face_size=48, crop_seconds=1.0),
                                                workers=1, progress=False)
    ds.seed = 3
    reference = _loader_batches(ds, 0)
    assert len(reference) == 2 * (len(ds) // 4) - 1  # epoch 1 resumed at its second batch
    for workers in (1, 2):
        for a, b in zip(reference, _loader_batches(ds, workers), strict=True):
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_same_final_weights_with_0_1_or_2_workers(tiny_set, tmp_path):
    weights = []
    for workers in (0, 1, 2):  # at a fixed thread count: torch's CPU reductions depend on it
        run = train(TrainConfig(method="cmpc", data=str(tiny_set), out=str(tmp_path / f"w{workers}"), epochs=2,
                                workers=workers, threads=1, method_args={"cluster_warmup_epochs": 1, "num_prototypes": [3]},
                                **TINY), progress=False)
        weights.append(load_file(str(run / "model.safetensors")))
    for other in weights[1:]:
        assert all(torch.equal(weights[0][k], other[k]) for k in weights[0])


@register_method("toy-mean-pool")
class ToyMethod(TwoStreamMethod):
    """A method a contributor might add: cosine agreement of the two modalities' embeddings."""

    @dataclass
    class Config:
        weight: float = 1.0

    def training_step(self, batch):
        z = self.encode(batch)
        a, b = (torch.nn.functional.normalize(z[m], dim=1) for m in self.modalities)
        loss = self.cfg.weight * (1 - (a * b).sum(1)).mean()
        return loss, {"loss": loss.detach()}


def test_a_method_registered_outside_the_package_runs_through_the_loop_and_the_protocol(tiny_set, tmp_path):
    from avlab.cli import main as cli

    out = tmp_path / "toy"
    assert cli(["train", "--method", "toy-mean-pool", "--data", str(tiny_set), "--out", str(out), "--epochs", "1",
                "--batch-size", "8", "--face-size", "48", "--weight", "0.5", "--workers", "0", "--eval",
                "--quiet"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["method_args"] == {"weight": 0.5} and cfg["task"] == "voice-face"
    assert "verification" in json.loads((out / "eval.json").read_text())["metrics"]["unseen_unheard"]


def test_a_run_folder_of_the_first_version_still_loads(tiny_cmpc_run, tmp_path):
    """v1 kept face/voice options at the top of config.json and ``face_encoder.*`` weight names."""
    import shutil

    old = tmp_path / "v1"
    shutil.copytree(tiny_cmpc_run, old)
    cfg = json.loads((old / "config.json").read_text())
    v1 = {k: v for k, v in cfg.items() if k not in ("task", "task_args", "spec", "config_version")}
    v1.update(cfg["task_args"], model={"face_model": "resnet_tiny", "voice_model": "resnet_tiny",
                                       "embed_dim": cfg["model"]["embed_dim"], "proj_dim": None})
    (old / "config.json").write_text(json.dumps(v1))
    tensors = load_file(str(old / "model.safetensors"))
    save_file({k.replace("encoders.face.", "face_encoder.").replace("encoders.voice.", "voice_encoder."): v
               for k, v in tensors.items()}, str(old / "model.safetensors"))
    cfg_old, method_old = load_run(old)
    cfg_new, method_new = load_run(tiny_cmpc_run)
    assert cfg_old.task == "voice-face" and cfg_old.task_config() == cfg_new.task_config()
    new = method_new.state_dict()
    assert all(torch.equal(v, new[k]) for k, v in method_old.state_dict().items())


def test_a_cmac_run_written_before_its_defaults_changed_keeps_its_recipe():
    """v2 CMAC configs stored only the options given; v3's defaults (max pooling, replicate padding)
    must not silently change how such a run is rebuilt — while options it did give stay."""
    from avlab.runs import CONFIG_VERSION, migrate_config

    old = {"config_version": 2, "method": "cmac", "method_args": {"visual_pool": "audio_guided"}}
    assert migrate_config(old)["method_args"] == {"visual_pool": "audio_guided", "visual_padding": "zeros"}
    assert migrate_config({"config_version": 2, "method": "cmac"})["method_args"] == {
        "visual_pool": "mean", "visual_padding": "zeros"}
    new = {"config_version": CONFIG_VERSION, "method": "cmac", "method_args": {}}
    assert migrate_config(new)["method_args"] == {}  # today's runs take today's defaults
    assert "method_args" not in migrate_config({"config_version": 2, "method": "cid"})


def test_asking_for_cuda_without_a_gpu_is_a_clear_error():
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")


@pytest.mark.parametrize("replacement", [False, True])
def test_batch_order_is_seeded_split_across_processes_and_optionally_with_replacement(replacement):
    from avlab.data.loader import EpochBatchSampler

    def batches(rank=0, world=1, epoch=3):
        s = EpochBatchSampler(40, 8, seed=5, rank=rank, world=world, replacement=replacement)
        s.set_epoch(epoch)
        return [[i for _, i in b] for b in s]

    one = batches()
    assert len(one) == 5 and one == batches() and one != batches(epoch=4)
    # two processes' shares, in rank order, are the one-process batches
    assert [a + b for a, b in zip(batches(0, 2), batches(1, 2))] == one
    seen = [i for b in one for i in b]
    assert (len(set(seen)) == 40) is (not replacement)  # a permutation, or draws that repeat (40 of 40 …)
    draws = EpochBatchSampler(10_000, 100, seed=0, replacement=replacement).order(0)
    assert (len(set(draws.tolist())) < 10_000) is replacement  # … with replacement, about 63 % distinct


def test_sampling_is_checked_by_name(tiny_set, tmp_path):
    from avlab.train import TrainConfig, train

    with pytest.raises(ValueError, match="sampling must be 'epoch' or 'replacement'"):
        train(TrainConfig(method="cid", data=str(tiny_set), out=str(tmp_path / "r"), sampling="bootstrap"), progress=False)
    assert not (tmp_path / "r").exists()
