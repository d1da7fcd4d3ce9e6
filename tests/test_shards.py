"""WebDataset shards: round trip, resumable writing, every sample exactly once per epoch across
2 DDP ranks × 2 DataLoader workers, and a corrupt shard named in the error."""
import json
import os
import tarfile

import numpy as np
import pytest

from avlab.data.loader import make_loader
from avlab.data.shards import MANIFEST, ShardError, ShardReader, write_shards


def _sample(i: int) -> dict:
    return {"x.npy": np.full((3, 2), i, dtype=np.int16), "meta.json": {"id": i}}


def _write(out, n=10, size=4):
    return write_shards([(f"s{i:04d}", i) for i in range(n)], _sample, out, shard_size=size, info={"task": "toy"},
                        workers=2, progress=False)


class _Ids:
    """A map-style dataset over a shard folder that yields each sample's id."""

    def __init__(self, reader):
        self.reader = reader

    def __len__(self):
        return len(self.reader)

    def __getitem__(self, key):
        _, i = key
        return int(self.reader.field(i, "x.npy")[0, 0])

    def collate(self, items):
        return items


def test_round_trip_and_a_webdataset_layout(tmp_path):
    out = _write(tmp_path / "s")
    reader = ShardReader(out)
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["count"] == 10 and [s["count"] for s in manifest["shards"]] == [4, 4, 2] and manifest["task"] == "toy"
    assert all(reader.field(i, "x.npy").tolist() == [[i, i]] * 3 for i in range(10))
    assert reader.meta[7] == {"id": 7} and reader.keys[7] == "s0007"
    with tarfile.open(out / "shard-000001.tar") as tar:  # what any WebDataset reader sees
        assert tar.getnames()[:2] == ["s0004.x.npy", "s0004.meta.json"]


def test_the_webdataset_library_streams_our_shards(tmp_path):
    """Shards are plain WebDataset tars: its own reader streams the same samples."""
    import webdataset as wds

    out = _write(tmp_path / "s")
    urls = [str(p) for p in sorted(out.glob("shard-*.tar"))]
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode())
    assert [s["__key__"] for s in samples] == [f"s{i:04d}" for i in range(10)]
    assert all(s["x.npy"].tolist() == [[i, i]] * 3 and s["meta.json"] == {"id": i} for i, s in enumerate(samples))


def test_writing_resumes_keeping_finished_shards(tmp_path):
    out = _write(tmp_path / "s")
    first = (out / "shard-000000.tar").stat().st_mtime_ns
    (out / "shard-000001.tar.index.json").unlink()  # as if killed while writing shard 1
    (out / "shard-000001.tar").write_bytes(b"half a shard")
    _write(tmp_path / "s")
    assert (out / "shard-000000.tar").stat().st_mtime_ns == first
    assert ShardReader(out).field(5, "x.npy")[0, 0] == 5


@pytest.mark.parametrize("n", [32, 36])
def test_every_sample_once_per_epoch_across_two_ranks_and_two_workers(tmp_path, n):
    ds = _Ids(ShardReader(_write(tmp_path / "s", n=n, size=5)))
    for epoch in (0, 1):
        seen = []
        for rank in (0, 1):
            loader, sampler = make_loader(ds, 8, seed=0, workers=2, rank=rank, world=2)
            sampler.set_epoch(epoch)
            batches = list(loader)
            assert all(len(b) == 4 for b in batches)  # each rank holds half of every global batch
            seen += [i for b in batches for i in b]
        assert len(seen) == len(set(seen)) == n - n % 8  # no duplicates; only the last partial batch dropped
        assert set(seen) <= set(range(n))


def test_a_truncated_shard_is_an_error_naming_shard_and_sample(tmp_path):
    out = _write(tmp_path / "s")
    path = out / "shard-000002.tar"
    os.truncate(path, 600)
    reader = ShardReader(out)
    with pytest.raises(ShardError, match=r"sample s0009 in shard shard-000002.tar.*truncated"):
        reader.field(9, "x.npy")
    path.unlink()
    with pytest.raises(ShardError, match="shard-000002.tar .*cannot be opened"):
        ShardReader(out).field(8, "x.npy")


def test_voice_face_shards_serve_the_same_samples_and_train_and_evaluate(tiny_set, tmp_path):
    import torch

    from avlab.cli import main as cli
    from avlab.data.voxceleb import VoiceFaceDataset

    shards = tmp_path / "shards"
    assert cli(["prepare", "shards", "--data", str(tiny_set), "--out", str(shards), "--shard-size", "16",
                "--face-size", "48", "--workers", "2", "--quiet"]) == 0
    raw = VoiceFaceDataset(tiny_set, ("train",), face_size=48, progress=False)
    from_shards = VoiceFaceDataset(shards, ("train",), face_size=48, progress=False)
    assert [c.path for c in raw.clips] == [c.path for c in from_shards.clips]
    for ds in (raw, from_shards):
        ds.seed = 5
    for i in (0, 7, len(raw) - 1):
        a, b = raw[(2, i)], from_shards[(2, i)]
        assert all(torch.equal(a[k], b[k]) if torch.is_tensor(a[k]) else a[k] == b[k] for k in a)
    with pytest.raises(ValueError, match="48-px faces"):
        VoiceFaceDataset(shards, ("train",), face_size=64, progress=False)
    out = tmp_path / "run"
    assert cli(["train", "--method", "cid", "--data", str(shards), "--out", str(out), "--epochs", "1",
                "--batch-size", "8", "--face-size", "48", "--workers", "2", "--eval", "--quiet"]) == 0
    result = json.loads((out / "eval.json").read_text())
    assert result["task"] == "voice-face" and "verification" in result["metrics"]["unseen_unheard"]


def test_a_raw_layout_too_large_for_memory_points_to_shards(tiny_set, monkeypatch):
    from avlab.data.voxceleb import VoiceFaceDataset

    monkeypatch.setenv("AVLAB_MAX_CACHE_GB", "0.001")
    with pytest.raises(ValueError, match="avlab prepare shards"):
        VoiceFaceDataset(tiny_set, ("train",), face_size=48, progress=False)
