"""Run folders: the run configuration (saved, loaded, migrated), the metrics log, a run's model.

A run folder holds ``config.json`` (this module's :class:`TrainConfig` plus the data's
:class:`~avlab.methods.base.DataSpec`, the git commit, versions), ``metrics.jsonl`` (one line per
epoch), checkpoints and what the task's evaluation writes. Everything that reads a run goes
through :func:`load_config` / :func:`load_run`, so an old run folder keeps loading after the
configuration changes shape (:func:`migrate_config`, :func:`migrate_state_dict`).
"""
from __future__ import annotations

import json
import os
import subprocess
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from avlab.methods.base import DataSpec, ModalitySpec, ModelConfig, create_method
from avlab.parallel import usable_cores
from avlab.registry import METHODS, TASKS

CONFIG_VERSION = 3  # 3: CMAC's defaults changed (runs before keep theirs: migrate_config)


@dataclass
class TrainConfig:
    """The loop's options. Task options (input sizes, features, augmentation) live in
    ``task_args`` and the method's in ``method_args``; each is checked against its owner's
    ``Config`` dataclass, and an unknown option is refused by name."""

    method: str = "cid"
    data: str = "data/talking-faces-quick"
    out: str = "runs/cid"
    task: str = ""  # empty: the data folder's task (its manifest, or its layout)
    epochs: int = 30
    batch_size: int = 32
    optimizer: str = "adam"  # adam | adamw
    lr: float = 2e-3
    min_lr: float = 1e-4
    weight_decay: float = 1e-5
    warmup_epochs: float = 1.0  # linear LR warm-up, then cosine to min_lr
    grad_clip: float = 5.0
    seed: int = 0
    checkpoint_every: int = 100  # steps
    workers: int | None = None  # data-loading processes (None: the machine's cores, at most 4)
    threads: int | None = None  # torch's CPU threads per process (None: the cores this process may use, less
    # one per loading worker, at least 1: on a small machine, threads that wait on a busy core stall each step)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = False  # bfloat16 autocast on CUDA
    log_every: int = 20  # steps between syncs of the logged values to the host
    val_every: int = 1  # epochs between validation scores (best.safetensors); 0: none
    init_from: str = ""  # a run whose weights initialise this one (low-shot fine-tuning): its encoders, and
    # every other weight of the same name and shape (e.g. a linear probe's classifier)
    trunk_lr_scale: float = 1.0  # the encoders' trunks learn at lr × this; 0 freezes them (a linear probe)
    early_stop: int = 0  # stop after this many validations without a better score (0: train every epoch)
    train_fraction: float = 1.0  # share of the training samples used (seeded choice; low-shot)
    sampling: str = "epoch"  # epoch: every sample once an epoch | replacement: uniform draws (CMPC's released code)
    model: ModelConfig = field(default_factory=ModelConfig)
    method_args: dict = field(default_factory=dict)
    task_args: dict = field(default_factory=dict)

    def method_config(self):
        return _options(METHODS.get(self.method).Config, self.method_args, f"method {self.method!r}")

    def task_config(self):
        return _options(TASKS.get(self.task).Config, self.task_args, f"task {self.task!r}")

    @property
    def n_workers(self) -> int:
        return default_workers() if self.workers is None else self.workers

    def to_json(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_json(d: dict) -> "TrainConfig":
        d = migrate_config(d)
        d["model"] = ModelConfig(**d.get("model", {}))
        return TrainConfig(**{k: v for k, v in d.items() if k in {f.name for f in fields(TrainConfig)}})


def default_workers() -> int:
    return max(0, min(usable_cores(), 4))


def default_threads(workers: int, processes: int = 1, cores: int | None = None) -> int:
    """torch threads for one training process: its share of the cores less its loading workers.

    >>> default_threads(0, cores=2), default_threads(2, cores=2), default_threads(1, processes=2, cores=16)
    (2, 1, 7)
    """
    return max(1, (cores or usable_cores()) // max(processes, 1) - workers)


def _options(cls, given: dict, owner: str):
    known = {f.name for f in fields(cls)}
    unknown = set(given) - known
    if unknown:
        raise ValueError(f"{owner} has no option(s) {sorted(unknown)}; it has {sorted(known)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in given.items()})


# --- migration of run folders written by earlier versions ---------------------------------------
_V1_TASK_KEYS = ("face_size", "crop_seconds", "n_mels", "augment")  # voice-face options, v1 kept them at top


def migrate_config(d: dict) -> dict:
    """A config.json of any earlier version, in today's shape."""
    d = dict(d)
    version = d.get("config_version", 1)
    if version < 2:
        d = _v1_to_v2(d)
    if version < 3 and d.get("method") == "cmac":
        # v3 changed CMAC's defaults (max pooling in the pair score, replicate padding); a run
        # written before keeps the recipe it was trained with (its config stored only given options).
        d["method_args"] = {"visual_pool": "mean", "visual_padding": "zeros", **d.get("method_args", {})}
    d["config_version"] = CONFIG_VERSION
    return d


def _v1_to_v2(d: dict) -> dict:
    """v1 runs were all voice-face, with the task's options and encoder names at the top."""
    d["task"] = d.get("task") or "voice-face"
    d["task_args"] = {**{k: d.pop(k) for k in _V1_TASK_KEYS if k in d}, **d.get("task_args", {})}
    model = dict(d.get("model", {}))
    encoders = {m: model.pop(f"{m}_model") for m in ("voice", "face") if f"{m}_model" in model}
    d["model"] = {**model, "encoders": {**encoders, **model.get("encoders", {})}}
    if "spec" not in d and "n_train_clips" in d:
        d["spec"] = DataSpec("voice-face", {"voice": ModalitySpec("spectrogram", 1), "face": ModalitySpec("image", 3)},
                             d["n_train_clips"], d.get("n_train_identities", 0)).to_json()
    return d


def migrate_state_dict(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """v1 kept ``face_encoder.*`` / ``voice_encoder.*``; today's methods hold ``encoders.<modality>.*``."""
    out = {}
    for k, v in tensors.items():
        for m in ("voice", "face"):
            if k.startswith(f"{m}_encoder."):
                k = f"encoders.{m}." + k[len(m) + 9:]
        out[k] = v
    return out


# --- reading runs --------------------------------------------------------------------------------
def load_config(run: str | os.PathLike) -> tuple[TrainConfig, dict]:
    """(the run's TrainConfig, the whole config.json, migrated)."""
    path = Path(run) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{run} is not a run folder (no config.json)")
    info = migrate_config(json.loads(path.read_text()))
    return TrainConfig.from_json(info), info


def run_spec(info: dict) -> DataSpec:
    return DataSpec.from_json(info["spec"])


def build_method(cfg: TrainConfig, spec: DataSpec):
    return create_method(cfg.method, spec, cfg.model, cfg.method_config())


def load_run(run: str | os.PathLike, weights: str = "model.safetensors", device: str | torch.device = "cpu"):
    """(config, method with the run's weights, in eval mode) of a finished run."""
    from safetensors.torch import load_file

    run = Path(run)
    path = run / weights
    if not path.exists():
        raise FileNotFoundError(f"{run} has no {weights} (is the run finished? `avlab train --resume`)")
    cfg, info = load_config(run)
    method = build_method(cfg, run_spec(info))
    method.load_state_dict(migrate_state_dict(load_file(str(path))))
    return cfg, method.to(device).eval()


def newest_run(root: str | os.PathLike = "runs") -> Path | None:
    """The run folder under ``root`` whose ``model.safetensors`` was written last, if any."""
    models = sorted(Path(root).rglob("model.safetensors"), key=lambda p: p.stat().st_mtime)
    return models[-1].parent if models else None


def newest_runs(root: str | os.PathLike = "runs") -> list[Path]:
    """The newest run (by ``model.safetensors``' time) of each registered task under ``root``, in
    task-name order — after ``make run``, one run of each of its stages. A folder whose
    ``config.json`` is missing or unreadable, or names a task not registered, is passed over (said
    on stderr)."""
    import sys

    newest = {}
    for model in sorted(Path(root).rglob("model.safetensors"), key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            task = load_config(model.parent)[0].task
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"passing over {model.parent}: {exc}", file=sys.stderr)
            continue
        if task not in TASKS:
            print(f"passing over {model.parent}: its task {task!r} is not registered", file=sys.stderr)
            continue
        newest.setdefault(task, model.parent)
    return [newest[task] for task in sorted(newest)]


def task_of(result_or_config: dict):
    """The registered task of an ``eval.json`` or ``config.json`` (v1 files name none: voice-face)."""
    return TASKS.get(result_or_config.get("task") or "voice-face")


def read_metrics(run: str | os.PathLike) -> list[dict]:
    path = Path(run) / "metrics.jsonl"
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()] if path.exists() else []


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
