"""One training loop for every method.

A run folder holds ``config.json`` (the loop's, the model's and the method's options, the seed,
the git commit), ``metrics.jsonl`` (one line per epoch), ``checkpoint.safetensors`` (the latest
resumable state, written atomically every ``checkpoint_every`` steps and at each epoch's end),
``model.safetensors`` (final weights) and what the method saves (e.g. ``clusters.safetensors``).

Exact resume: batch order is a function of (seed, epoch), each sample's augmentation of
(seed, epoch, clip), and the checkpoint carries weights, optimizer, method state and the
epoch's running sums — so a run killed at any point and resumed ends bit-identical (on CPU).
"""
from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from avlab.checkpoint import load_checkpoint, save_checkpoint, save_weights
from avlab.data.features import MelConfig
from avlab.data.voxceleb import VoiceFaceDataset
from avlab.methods import METHODS, create_method
from avlab.methods.base import ModelConfig


@dataclass
class TrainConfig:
    method: str = "cid"
    data: str = "data/talking-faces-quick"
    out: str = "runs/cid"
    epochs: int = 30
    batch_size: int = 32
    optimizer: str = "adam"  # adam | adamw
    lr: float = 2e-3
    min_lr: float = 1e-4
    weight_decay: float = 1e-5
    warmup_epochs: float = 1.0  # linear LR warm-up, then cosine to min_lr
    grad_clip: float = 5.0
    seed: int = 0
    face_size: int = 64
    crop_seconds: float = 2.0
    n_mels: int = 64
    augment: bool = True  # face crop/colour jitter, voice gain/noise (see avlab.data.voxceleb)
    checkpoint_every: int = 100  # steps
    workers: int = 2  # processes for indexing / caching the data
    init_from: str = ""  # a run whose encoder weights initialise this one (low-shot fine-tuning)
    train_fraction: float = 1.0  # share of the training clips used (seeded choice; low-shot)
    model: ModelConfig = field(default_factory=ModelConfig)
    method_args: dict = field(default_factory=dict)

    def method_config(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; registered: {sorted(METHODS)}")
        cls = METHODS[self.method].Config
        known = {f.name for f in fields(cls)}
        unknown = set(self.method_args) - known
        if unknown:
            raise ValueError(f"method {self.method!r} has no option(s) {sorted(unknown)}; it has {sorted(known)}")
        args = {k: tuple(v) if isinstance(v, list) else v for k, v in self.method_args.items()}
        return cls(**args)

    def to_json(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_json(d: dict) -> "TrainConfig":
        d = dict(d)
        d["model"] = ModelConfig(**d.get("model", {}))
        return TrainConfig(**{k: v for k, v in d.items() if k in {f.name for f in fields(TrainConfig)}})


def lr_at(step: int, total: int, warmup: int, lr: float, min_lr: float) -> float:
    """Linear warm-up to ``lr`` over ``warmup`` steps, then cosine to ``min_lr``.

    >>> [round(lr_at(s, 10, 2, 1.0, 0.0), 3) for s in (0, 1, 2, 6, 10)]
    [0.5, 1.0, 1.0, 0.5, 0.0]
    """
    if step < warmup:
        return lr * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * min(p, 1.0)))


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build(cfg: TrainConfig, progress: bool = True):
    """Dataset and method of a config (also used by evaluation to rebuild a trained run)."""
    ds = VoiceFaceDataset(cfg.data, ("train",), face_size=cfg.face_size, crop_seconds=cfg.crop_seconds,
                          train=True, mel=MelConfig(n_mels=cfg.n_mels), workers=cfg.workers, progress=progress,
                          augment=cfg.augment)
    ds.seed = cfg.seed
    if cfg.train_fraction < 1.0:
        ds.subset(cfg.train_fraction, seed=cfg.seed)
    seed_everything(cfg.seed)
    method = create_method(cfg.method, cfg.model, cfg.method_config(), n_train=len(ds), n_classes=len(ds.identities))
    if cfg.init_from:
        init_encoders(method, cfg.init_from)
    return ds, method


def init_encoders(method, run: str | os.PathLike) -> None:
    """Copy the face and voice encoders of a finished run into ``method`` (same architecture)."""
    from safetensors.torch import load_file

    weights = Path(run) / "model.safetensors"
    if not weights.exists():
        raise FileNotFoundError(f"--init-from {run}: no model.safetensors there")
    enc = {k: v for k, v in load_file(str(weights)).items() if k.startswith(("face_encoder.", "voice_encoder."))}
    missing, _ = method.load_state_dict(enc, strict=False)
    if any(k.startswith(("face_encoder.", "voice_encoder.")) for k in missing):
        raise ValueError(f"--init-from {run}: its encoders do not match this run's model options")


def _optimizer(cfg: TrainConfig, params):
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r} (adam | adamw)")


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True,
          on_epoch: Callable[[dict], None] | None = None, stop_after_steps: int | None = None) -> Path:
    """Train ``cfg`` into ``cfg.out``; ``resume`` continues from its checkpoint.

    ``on_epoch`` receives each epoch's metrics (the notebook's live plot); ``stop_after_steps``
    ends the process's work early, as a kill would (used to test resuming).
    """
    run = Path(cfg.out)
    ckpt = run / "checkpoint.safetensors"
    if ckpt.exists() and not resume:
        raise FileExistsError(f"{run} already holds a run; pass --resume to continue it or choose another --out")
    if resume and not ckpt.exists():
        raise FileNotFoundError(f"cannot resume: {ckpt} does not exist")
    if resume:  # the run's own config wins, so a resumed run is the same run
        cfg = TrainConfig.from_json(json.loads((run / "config.json").read_text()))
    run.mkdir(parents=True, exist_ok=True)
    ds, method = build(cfg, progress)
    opt = _optimizer(cfg, method.parameters())
    steps_per_epoch = len(ds) // cfg.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"batch size {cfg.batch_size} is larger than the {len(ds)} training clips of {cfg.data}")
    total = steps_per_epoch * cfg.epochs
    warmup = int(cfg.warmup_epochs * steps_per_epoch)

    state = {"step": 0, "epoch_sums": {}, "epoch_count": 0, "epoch_start_time": None}
    if resume:
        state, extra = load_checkpoint(ckpt, method, opt)
        method.load_extra_tensors(extra)
    else:
        (run / "config.json").write_text(json.dumps({
            **cfg.to_json(), "git_commit": git_commit(), "n_train_clips": len(ds),
            "n_train_identities": len(ds.identities), "torch": torch.__version__,
            "machine": f"{platform.machine()} {os.cpu_count()} cores"}, indent=1))
        (run / "train_clips.json").write_text(json.dumps([c.path for c in ds.clips]))
        (run / "metrics.jsonl").write_text("")
    _truncate_metrics(run / "metrics.jsonl", state["step"] // steps_per_epoch)

    def checkpoint():
        save_checkpoint(ckpt, method, opt, method.extra_tensors(), state)

    method.train()
    bar = tqdm(total=total, initial=state["step"], desc=f"{cfg.method} {run.name}", unit="step", disable=not progress)
    steps_this_process = 0
    while state["step"] < total:
        epoch, within = divmod(state["step"], steps_per_epoch)
        ds.epoch = epoch
        if within == 0:
            state.update(epoch_sums={}, epoch_count=0, epoch_start_time=time.time(),
                         epoch_info=method.on_epoch_start(epoch, run))
        order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
        t_epoch = time.time()
        for b in range(within, steps_per_epoch):
            batch = ds.collate([ds[int(i)] for i in order[b * cfg.batch_size:(b + 1) * cfg.batch_size]])
            for g in opt.param_groups:
                g["lr"] = lr_at(state["step"], total, warmup, cfg.lr, cfg.min_lr)
            loss, logs = method.training_step(batch)
            if not torch.isfinite(loss):
                checkpoint()
                raise FloatingPointError(f"loss became {loss.item()} at step {state['step']} (epoch {epoch}); "
                                         f"the last good state is in {ckpt}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(method.parameters(), cfg.grad_clip)
            opt.step()
            state["step"] += 1
            steps_this_process += 1
            for k, v in logs.items():
                state["epoch_sums"][k] = state["epoch_sums"].get(k, 0.0) + v
            state["epoch_count"] += 1
            bar.update()
            bar.set_postfix(loss=f"{logs['loss']:.3f}", epoch=epoch)
            if state["step"] % cfg.checkpoint_every == 0:
                checkpoint()
            if stop_after_steps is not None and steps_this_process >= stop_after_steps:
                bar.close()
                return run
        record = {"epoch": epoch, "step": state["step"], "lr": opt.param_groups[0]["lr"],
                  **{k: v / state["epoch_count"] for k, v in state["epoch_sums"].items()},
                  **{f"cluster_{k}": v for k, v in (state.get("epoch_info") or {}).items()},
                  "seconds": round(time.time() - t_epoch, 3),
                  "clips_per_s": round((steps_per_epoch - within) * cfg.batch_size / max(time.time() - t_epoch, 1e-9), 1)}
        with open(run / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        checkpoint()
        if on_epoch:
            on_epoch(record)
    bar.close()
    save_weights(run / "model.safetensors", method, {"method": cfg.method, "config": json.dumps(cfg.to_json())})
    return run


def _truncate_metrics(path: Path, epochs_done: int) -> None:
    """Drop epoch lines a killed run wrote after its last checkpoint (they are recomputed)."""
    if not path.exists():
        return
    lines = [l for l in path.read_text().splitlines() if l.strip()]
    keep = [l for l in lines if json.loads(l)["epoch"] < epochs_done]
    if len(keep) != len(lines):
        path.write_text("".join(l + "\n" for l in keep))


def read_metrics(run: str | os.PathLike) -> list[dict]:
    path = Path(run) / "metrics.jsonl"
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()] if path.exists() else []


def load_run(run: str | os.PathLike, progress: bool = False):
    """(config, method with the run's final weights) of a finished run."""
    from avlab.checkpoint import load_weights

    run = Path(run)
    weights = run / "model.safetensors"
    if not weights.exists():
        raise FileNotFoundError(f"{run} has no model.safetensors (is the run finished? `avlab train --resume`)")
    info = json.loads((run / "config.json").read_text())
    cfg = TrainConfig.from_json(info)
    method = create_method(cfg.method, cfg.model, cfg.method_config(), n_train=info["n_train_clips"],
                           n_classes=info["n_train_identities"])
    load_weights(weights, method)
    method.eval()
    return cfg, method
