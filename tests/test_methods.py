"""Every registered method trains a step; CMPC's state and switches behave as documented."""
import pytest
import torch

from avlab.methods import METHODS, create_method
from avlab.methods.base import ModelConfig


def batch(n=8, classes=4):
    torch.manual_seed(0)
    return {"voice": torch.randn(n, 64, 101), "face": torch.randn(n, 3, 48, 48), "index": torch.arange(n),
            "label": torch.arange(n) % classes}


@pytest.mark.parametrize("name", sorted(METHODS))
@pytest.mark.parametrize("proj_dim", [None, 16])
def test_every_method_takes_a_training_step(name, proj_dim):
    method = create_method(name, ModelConfig(embed_dim=32, proj_dim=proj_dim), n_train=8, n_classes=4)
    method.on_epoch_start(0)
    loss, logs = method.training_step(batch())
    assert torch.isfinite(loss) and logs["loss"] == pytest.approx(loss.item())
    loss.backward()
    assert all(p.grad is not None for p in method.face_encoder.parameters())
    emb = method.embed_voice(batch()["voice"][:2])
    assert emb.shape == (2, 32) and torch.allclose(emb.norm(dim=1), torch.ones(2))


def cmpc(**options):
    cfg = METHODS["cmpc"].Config(cluster_warmup_epochs=1, cluster_every=2, num_prototypes=(2, 3), **options)
    return create_method("cmpc", ModelConfig(embed_dim=16), cfg, n_train=8)


def test_cmpc_clusters_on_schedule_and_keeps_them_until_the_next():
    m = cmpc()
    assert m.on_epoch_start(0) == {} and m.face_clusters is None  # warm-up
    assert m.on_epoch_start(1)["num_prototypes"] == [2, 3]
    first = m.face_clusters
    for _ in range(3):
        _, logs = m.training_step(batch())
        assert "proto_v2f" in logs and m.face_clusters is first  # kept across batches (the paper)
    assert m.on_epoch_start(2) == {} and m.face_clusters is first
    m.on_epoch_start(3)
    assert m.face_clusters is not first


def test_quirk_discard_clusters_uses_them_for_one_batch_only():
    m = cmpc(quirk_discard_clusters=True)
    m.on_epoch_start(1)
    _, logs = m.training_step(batch())
    assert "proto_v2f" in logs and m.face_clusters is None and m.voice_clusters is None
    _, logs = m.training_step(batch())
    assert "proto_v2f" not in logs


def test_memory_bank_update_is_the_momentum_rule():
    m = cmpc()
    before = m.voice_bank.clone()
    v, f = torch.randn(8, 16), torch.randn(8, 16)
    m.update_banks(torch.arange(8), v, f)
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
    assert all(torch.equal(a, b) for a, b in zip(m2.face_clusters.centroids, m.face_clusters.centroids))
    assert opt2.state_dict()["state"].keys() == opt.state_dict()["state"].keys()
