"""Pre-decoded samples in WebDataset tar shards, read by random access through an offset index.

``write_shards`` turns a list of samples into ``shard-000000.tar`` … in the WebDataset layout
(one tar member per field, named ``<key>.<field>``: ``.npy`` arrays, ``.json`` metadata), so any
WebDataset reader streams them. Beside each finished shard it writes an index of where each
member's bytes lie, and at the end ``shards.json`` (count, shard sizes, task, preprocessing
parameters, source files, bad samples).

``ShardReader`` reads sample ``i`` with one ``pread`` per field. Why random access and not a
streaming shuffle buffer: the training loop's sampler draws a seeded global permutation per
epoch, splits every global batch across DDP ranks and hands keys to DataLoader workers — so
each sample is read exactly once per epoch across ranks × workers, the batches do not depend on
the number of workers, and a killed run resumes bit-identically. A shuffle buffer gives none of
the three. Memory stays flat: the reader holds only the offsets (a few integers per sample) and
one open file per shard per process; the samples stay on disk (and in the page cache).

Writing is resumable: a finished shard (its tar and index both present) is kept, a partial one
is rewritten. A truncated or corrupt shard gives a :class:`ShardError` naming the shard and the
sample, never a hang.
"""
from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from avlab.parallel import imap_watched

MANIFEST = "shards.json"


class ShardError(RuntimeError):
    """A shard or a sample in it cannot be read; the message names both."""


def _shard_name(k: int) -> str:
    return f"shard-{k:06d}.tar"


def _encode(value) -> bytes:
    if isinstance(value, np.ndarray):
        buf = io.BytesIO()
        np.save(buf, value, allow_pickle=False)
        return buf.getvalue()
    return json.dumps(value).encode()


def _write_one_shard(path: Path, samples: list[tuple[str, dict]]) -> dict:
    """Write ``path`` atomically; returns its index ``{key: {field: [offset, size]}}``. A field
    ``meta.json`` is also kept in the index itself, so a reader knows every sample (its identity,
    label, split …) without touching the shards."""
    tmp = path.with_name(path.name + ".part")
    index: dict[str, dict[str, list[int]]] = {}
    with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        for key, fields in samples:
            for field, value in fields.items():
                data = _encode(value)
                info = tarfile.TarInfo(f"{key}.{field}")
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                header_at = tar.offset  # a USTAR member is one 512-byte header, then its data
                tar.addfile(info, io.BytesIO(data))
                index.setdefault(key, {})[field] = [header_at + tarfile.BLOCKSIZE, len(data)]
    os.replace(tmp, path)
    return index


def write_shards(items: Sequence[tuple[str, object]], make: Callable[[object], dict], out: str | os.PathLike,
                 shard_size: int = 256, info: dict | None = None, workers: int = 2, progress: bool = True) -> Path:
    """Shards of ``make(payload)`` (a dict of field → array or JSON-able value) for every
    ``(key, payload)`` of ``items``, in order.

    ``make`` runs in ``workers`` processes (a module-level function; each job carries only its own
    small payload, e.g. a clip's path). A sample whose ``make`` raises a
    :class:`~avlab.data.media.MediaError` is left out and listed in the manifest's ``bad``.
    """
    keys = [k for k, _ in items]
    from avlab.data import media

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n_shards = (len(keys) + shard_size - 1) // shard_size
    shards, bad = [], []
    bar = tqdm(total=len(keys), desc=f"writing shards to {out.name}", unit="sample", disable=not progress)
    for k in range(n_shards):
        ids = list(range(k * shard_size, min((k + 1) * shard_size, len(keys))))
        tar, idx = out / _shard_name(k), out / f"{_shard_name(k)}.index.json"
        if not (tar.exists() and idx.exists()):  # a finished shard is kept; a partial one rewritten
            samples, shard_bad = [], []
            jobs = [(make, items[i][1]) for i in ids]
            for i, fields in zip(ids, imap_watched(_safe_make, jobs, workers, name=lambda job: str(job[1]))):
                if isinstance(fields, media.MediaError):
                    shard_bad.append({"key": keys[i], **media.to_dict(fields)})
                else:
                    samples.append((keys[i], fields))
            index = _write_one_shard(tar, samples)
            _atomic_json(idx, {"bad": shard_bad, "index": index,
                               "meta": {key: fields.get("meta.json", {}) for key, fields in samples}})
        entry = json.loads(idx.read_text())
        shards.append({"name": tar.name, "count": len(entry["index"]), "bytes": tar.stat().st_size})
        bad += entry["bad"]
        bar.update(len(ids))
    bar.close()
    _atomic_json(out / MANIFEST, {**(info or {}), "count": sum(s["count"] for s in shards), "shard_size": shard_size,
                                  "shards": shards, "bad": bad, "format": "webdataset tar, offset index"})
    return out


def _safe_make(job):
    from avlab.data import media

    make, payload = job
    try:
        return make(payload)
    except media.MediaError as exc:  # listed, not fatal: the other samples are still written
        return exc


def _atomic_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)


class ShardReader:
    """Sample ``i`` of a shard folder (in manifest order) by random access."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        path = self.folder / MANIFEST
        if not path.exists():
            raise FileNotFoundError(f"{self.folder} has no {MANIFEST}: write it with `avlab prepare shards`")
        self.manifest = json.loads(path.read_text())
        self.keys, self._where, self.meta = [], [], []  # per sample: (shard, {field: (offset, size)}), metadata
        for k, shard in enumerate(self.manifest["shards"]):
            idx_path = self.folder / f"{shard['name']}.index.json"
            try:
                entry = json.loads(idx_path.read_text())
                index, meta = entry["index"], entry["meta"]
            except (OSError, ValueError, KeyError) as exc:
                raise ShardError(f"{idx_path.name}: the index of shard {shard['name']} cannot be read ({exc})") from None
            for key, fields in index.items():
                self.keys.append(key)
                self._where.append((k, {f: (o, s) for f, (o, s) in fields.items()}))
                self.meta.append(meta.get(key, {}))
        self._files: dict[int, int] = {}  # shard → file descriptor, opened lazily in each process
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.keys)

    def _fd(self, k: int) -> int:
        if self._pid != os.getpid():  # a forked DataLoader worker: its own descriptors
            self._files, self._pid = {}, os.getpid()
        if k not in self._files:
            name = self.manifest["shards"][k]["name"]
            try:
                self._files[k] = os.open(self.folder / name, os.O_RDONLY)
            except OSError as exc:
                raise ShardError(f"shard {name} in {self.folder} cannot be opened ({exc.strerror})") from None
        return self._files[k]

    def field(self, i: int, field: str):
        k, fields = self._where[i]
        name = self.manifest["shards"][k]["name"]
        if field not in fields:
            raise ShardError(f"sample {self.keys[i]} in shard {name} has no field {field!r} (it has {sorted(fields)})")
        offset, size = fields[field]
        data = os.pread(self._fd(k), size, offset)
        try:
            if len(data) != size:
                raise ValueError(f"{len(data)} of {size} bytes: the shard is truncated")
            return np.load(io.BytesIO(data), allow_pickle=False) if field.endswith("npy") else json.loads(data)
        except ValueError as exc:
            raise ShardError(f"sample {self.keys[i]} in shard {name}: field {field!r} is corrupt ({exc})") from None

    def __getstate__(self):  # descriptors do not cross processes
        return {**self.__dict__, "_files": {}}
