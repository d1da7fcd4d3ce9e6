"""Every registered method trains a step on every task it fits; CMPC's state and switches behave
as documented; what a method creates follows its inputs' device."""
import pytest
import torch

from avlab.methods import METHODS, DataSpec, ModelConfig, create_method
from avlab.registry import TASKS


def spec_of(task: str, n_train=8, n_classes=4) -> DataSpec:
    return DataSpec(task, dict(TASKS.get(task).modalities), n_train, n_classes)


def batch(n=8, classes=4):
    torch.manual_seed(0)
    return {"voice": torch.randn(n, 64, 101), "face": torch.randn(n, 3, 48, 48), "index": torch.arange(n),
            "label": torch.arange(n) % classes}


PAIRS = [(m, t) for t in TASKS.names() for m in TASKS.get(t).methods()]


@pytest.mark.parametrize("name,task", PAIRS)
@pytest.mark.parametrize("proj_dim", [None, 16])
def test_every_method_takes_a_training_step_on_every_task_it_fits(name, task, proj_dim):
    method = create_method(name, spec_of(task), ModelConfig(embed_dim=32, proj_dim=proj_dim))
    method.on_epoch_start(0)
    example = TASKS.get(task).example_batch()  # shaped like the task's own batches
    loss, logs = method.training_step(example)
    assert torch.isfinite(loss) and float(logs["loss"]) == pytest.approx(loss.item())
    assert all(torch.is_tensor(v) and v.dim() == 0 and not v.requires_grad for v in logs.values())
    loss.backward()
    assert all(p.grad is not None for p in method.encoders.parameters())
    modalities = list(TASKS.get(task).modalities)
    emb = method.embed(modalities[0], example[modalities[0]][:2])
    assert emb.shape == (2, 32) and torch.allclose(emb.norm(dim=1), torch.ones(2))
    assert set(method(example)) >= {f"emb.{m}" for m in modalities}


def test_a_method_refuses_a_task_it_does_not_fit_naming_both():
    with pytest.raises(ValueError, match=r"method 'cmpc' does not fit task 'other'.*'voice-face'"):
        create_method("cmpc", DataSpec("other", dict(TASKS.get("voice-face").modalities), 8))


def cmpc(**options):
    cfg = METHODS["cmpc"].Config(cluster_warmup_epochs=1, cluster_every=2, num_prototypes=(2, 3), **options)
    return create_method("cmpc", spec_of("voice-face"), ModelConfig(embed_dim=16), cfg)


def test_cmpc_clusters_on_schedule_and_keeps_them_until_the_next():
    m = cmpc()
    assert m.on_epoch_start(0) == {} and not m.clusters  # warm-up
    assert m.on_epoch_start(1)["num_prototypes"] == [2, 3]
    first = m.clusters["face"]
    for _ in range(3):
        _, logs = m.training_step(batch())
        assert "proto_v2f" in logs and m.clusters["face"] is first  # kept across batches (the paper)
    assert m.on_epoch_start(2) == {} and m.clusters["face"] is first
    m.on_epoch_start(3)
    assert m.clusters["face"] is not first


def test_quirk_discard_clusters_uses_them_for_one_batch_only():
    m = cmpc(quirk_discard_clusters=True)
    m.on_epoch_start(1)
    _, logs = m.training_step(batch())
    assert "proto_v2f" in logs and not m.clusters
    _, logs = m.training_step(batch())
    assert "proto_v2f" not in logs


def test_memory_bank_update_is_the_momentum_rule():
    m = cmpc()
    before = m.voice_bank.clone()
    v, f = torch.randn(8, 16), torch.randn(8, 16)
    m.update_banks(torch.arange(8), {"voice": v, "face": f})
    expected = torch.nn.functional.normalize(0.5 * before + 0.5 * torch.nn.functional.normalize(v, dim=1), dim=1)
    torch.testing.assert_close(m.voice_bank, expected)


def test_cmpc_state_survives_a_checkpoint_round_trip(tmp_path):
    from avlab.checkpoint import load_checkpoint, save_checkpoint

    m = cmpc()
    m.on_epoch_start(1)
    opt = torch.optim.Adam(m.parameters())
    loss, _ = m.training_step(batch())
    loss.backward()
    opt.step()
    save_checkpoint(tmp_path / "c.safetensors", m, opt, m.extra_tensors(), {"step": 1})
    m2 = cmpc()
    opt2 = torch.optim.Adam(m2.parameters())
    state, extra = load_checkpoint(tmp_path / "c.safetensors", m2, opt2)
    m2.load_extra_tensors(extra)
    assert state == {"step": 1}
    assert torch.equal(m2.face_bank, m.face_bank)
    assert all(torch.equal(a, b) for a, b in zip(m2.clusters["face"].centroids, m.clusters["face"].centroids))
    assert opt2.state_dict()["state"].keys() == opt.state_dict()["state"].keys()


@pytest.mark.parametrize("name,task", PAIRS)
def test_every_tensor_a_method_creates_follows_the_input_device(name, task):
    """A step on the ``meta`` device: a tensor made on the CPU (``torch.ones(n)``, a clustering
    left on the host) would meet meta tensors and raise. Clusterings come from the CPU bank and
    are moved beside it, as on CUDA."""
    method = create_method(name, spec_of(task), ModelConfig(embed_dim=16))
    if hasattr(method, "clusters"):  # cluster on the host first (faiss needs real numbers)
        method.cfg.cluster_warmup_epochs, method.cfg.num_prototypes = 0, (2, 3)
        method.on_epoch_start(0)
        clusters = method.clusters
        method.to("meta")
        method.load_extra_tensors({k: v for m, c in clusters.items() for k, v in c.tensors(f"{m}_clusters").items()})
        assert all(x.device.type == "meta" for c in method.clusters.values() for x in c.centroids)
    else:
        method.to("meta")
    loss, logs = method.training_step({k: v.to("meta") for k, v in TASKS.get(task).example_batch().items()})
    assert loss.device.type == "meta" and all(v.device.type == "meta" for v in logs.values())
