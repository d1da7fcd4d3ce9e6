"""TensorBoard event files beside a run's ``metrics.jsonl``: scalars and the embedding projector.

``<run>/tb/`` holds the training scalars (losses, learning rate, clips/s, validation metrics) and
``<run>/tb/projector/`` the test embeddings with face thumbnails as sprites (written by a task:
:func:`avlab.tasks.voiceface.projector.write_projector`), so runs compare in
TensorBoard as researchers habitually do::

    avlab tb runs/main/cid runs/main/cmpc     # http://127.0.0.1:6006

``metrics.jsonl`` stays the source of truth for the notebooks; these files are a view of it.
"""
from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path

import numpy as np

TB_DIR = "tb"
PROJECTOR_DIR = "projector"


class EventLog:
    """A run's TensorBoard writer: ``EventLog(run).scalars(step, {"train/loss": 0.7})``."""

    def __init__(self, run: str | Path, subdir: str = TB_DIR, purge_step: int | None = None):
        """``purge_step``: on resuming at that step, TensorBoard hides the events an interrupted
        process wrote from it on (they are recomputed), as ``metrics.jsonl`` drops their lines."""
        from torch.utils.tensorboard import SummaryWriter

        self.dir = Path(run) / subdir
        self._writer = SummaryWriter(log_dir=str(self.dir), purge_step=purge_step)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """One point per finite number in ``values`` (tags as given; "/" groups them in the UI).
        Non-numbers (lists, strings) and NaN/inf are skipped, so a metrics record can be passed whole."""
        for tag, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                continue
            if math.isfinite(float(value)):
                self._writer.add_scalar(tag, float(value), step)
        self._writer.flush()

    def embedding(self, features: np.ndarray, labels, thumbnails: np.ndarray | None = None,
                  tag: str = "embedding", header: list[str] | None = None, step: int = 0) -> None:
        """Vectors for the projector. ``labels``: one string per row, or rows of strings with
        ``header`` naming the columns; ``thumbnails``: (N, H, W, 3) uint8 RGB sprites."""
        import torch

        images = None
        if thumbnails is not None:
            images = torch.from_numpy(np.ascontiguousarray(thumbnails)).permute(0, 3, 1, 2).float() / 255.0
        self._writer.add_embedding(torch.as_tensor(np.asarray(features, dtype=np.float32)), metadata=list(labels),
                                   label_img=images, tag=tag, metadata_header=header, global_step=step)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def has_events(folder: Path) -> bool:
    return any(folder.glob("events.out.tfevents.*"))


SKIP = {"epoch", "step", "processes", "best_epoch"}


def epoch_scalars(record: dict) -> dict[str, float]:
    """TensorBoard tags for one ``metrics.jsonl`` record: ``val/…`` (validation metrics, keys
    starting with "val"), ``speed/…`` (clips/s, seconds), ``cluster/…``, ``train/…`` (the loss
    terms, lr and the rest)."""
    out = {}
    for key, value in record.items():
        if key in SKIP:
            continue
        if key.startswith("val"):
            out[f"val/{key.removeprefix('val_')}"] = value
        elif key in ("clips_per_s", "seconds"):
            out[f"speed/{key}"] = value
        elif key.startswith("cluster_"):
            out[f"cluster/{key.removeprefix('cluster_')}"] = value
        else:
            out[f"train/{key}"] = value
    return out


def scalars_from_metrics(run: str | Path) -> Path:
    """Write ``<run>/tb/`` from ``metrics.jsonl`` (for runs trained before the loop logged events);
    a run whose ``tb/`` already holds scalars is left alone."""
    from avlab.runs import read_metrics

    run = Path(run)
    if has_events(run / TB_DIR):
        return run / TB_DIR
    with EventLog(run) as log:
        for record in read_metrics(run):
            log.scalars(int(record["step"]), epoch_scalars(record))
    return run / TB_DIR


def is_run(folder: Path) -> bool:
    return (folder / "metrics.jsonl").exists() or (folder / TB_DIR).is_dir()


def expand_runs(paths: list[str | Path]) -> list[Path]:
    """Run folders among ``paths``; a folder that is not a run stands for the runs inside it
    (``runs/main`` → ``runs/main/cid``, ``runs/main/cmpc``)."""
    out = []
    for p in map(Path, paths):
        if not p.is_dir():
            raise FileNotFoundError(f"{p} is not a folder")
        found = [p] if is_run(p) else sorted(d for d in p.iterdir() if d.is_dir() and is_run(d))
        if not found:
            raise FileNotFoundError(f"{p} holds no run (no metrics.jsonl or tb/ in it or its subfolders)")
        out += found
    return out


def link_logdir(runs: list[Path]) -> Path:
    """A folder of symlinks ``<name> → <run>/tb`` (parent/name where names clash), so TensorBoard
    names each run. Not ``--logdir_spec``: TensorBoard's projector is disabled under it."""
    import hashlib

    from avlab.data.voxceleb import cache_dir
    from avlab.viz.report import run_names

    targets = [(r / TB_DIR).resolve() for r in runs]
    key = hashlib.sha1("\n".join(map(str, targets)).encode()).hexdigest()[:12]
    logdir = cache_dir() / "tb" / key
    shutil.rmtree(logdir, ignore_errors=True)
    for name, target in zip(run_names(runs), targets):
        target.mkdir(parents=True, exist_ok=True)
        link = logdir / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target, target_is_directory=True)
    return logdir


def tensorboard_command(runs: list[str | Path], host: str = "127.0.0.1", port: int = 6006) -> list[str]:
    """The ``tensorboard`` command line for ``runs`` (each named by its folder). The Python loader
    (``--load_fast=false``) follows the symlinks of :func:`link_logdir`."""
    return [sys.executable, "-m", "tensorboard.main", "--logdir", str(link_logdir(expand_runs(runs))),
            "--load_fast=false", "--host", host, "--port", str(port)]
