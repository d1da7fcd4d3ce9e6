"""One training loop for every task and method.

task data → DataLoader (workers) → method on its device → steps. The loop knows no modality or
dataset: the run's task (looked up by name in the task registry) supplies the training dataset
and its :class:`~avlab.methods.base.DataSpec`, the method supplies ``training_step``.

A run folder holds ``config.json``, ``metrics.jsonl`` (one line per epoch),
``checkpoint.safetensors`` (the latest resumable state, written atomically every
``checkpoint_every`` steps and at each epoch's end), ``model.safetensors`` (final weights) and
what the method saves (e.g. ``clusters.safetensors``).

Exact resume: batch order is a function of (seed, epoch), each sample's randomness of (seed,
epoch, sample) (see :mod:`avlab.data.loader`), and the checkpoint carries weights, optimizer,
method state, RNG states and the epoch's running sums — so a run killed at any point and resumed
ends bit-identical (on CPU), with any number of loader workers.
"""
from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from avlab import dist, tblog
from avlab.checkpoint import load_checkpoint, save_checkpoint, save_weights
from avlab.data.loader import make_loader
from avlab.data.manifest import detect_task
from avlab.device import resolve_device, to_device
from avlab.registry import TASKS
from avlab.runs import (CONFIG_VERSION, TrainConfig, build_method, default_threads, git_commit, migrate_state_dict,
                        read_metrics)

__all__ = ["TrainConfig", "train", "build", "lr_at", "read_metrics", "resolve_task"]


def lr_at(step: int, total: int, warmup: int, lr: float, min_lr: float) -> float:
    """Linear warm-up to ``lr`` over ``warmup`` steps, then cosine to ``min_lr``.

    >>> [round(lr_at(s, 10, 2, 1.0, 0.0), 3) for s in (0, 1, 2, 6, 10)]
    [0.5, 1.0, 1.0, 0.5, 0.0]
    """
    if step < warmup:
        return lr * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * min(p, 1.0)))


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_task(cfg: TrainConfig) -> TrainConfig:
    """Fill ``cfg.task`` from the data folder (its manifest or its layout) when not given."""
    if not cfg.task:
        cfg.task = detect_task(cfg.data)
    return cfg


def build(cfg: TrainConfig, progress: bool = True):
    """(training dataset, method) of a config: the task reads the data, the method fits its spec."""
    task = TASKS.get(cfg.task)
    ds = task.train_dataset(cfg.data, cfg.task_config(), workers=cfg.n_workers, progress=progress)
    ds.seed = cfg.seed
    if cfg.train_fraction < 1.0:
        ds.subset(cfg.train_fraction, seed=cfg.seed)
    seed_everything(cfg.seed)
    method = build_method(cfg, task.data_spec(ds))
    if cfg.init_from:
        init_encoders(method, cfg.init_from)
    return ds, method


def init_encoders(method, run: str | os.PathLike) -> None:
    """Copy the encoders of a finished run into ``method`` (same architecture), and every other
    weight of the same name and shape (a probe's classifier, a shared projection head)."""
    from safetensors.torch import load_file

    weights = Path(run) / "model.safetensors"
    if not weights.exists():
        raise FileNotFoundError(f"--init-from {run}: no model.safetensors there")
    own = method.state_dict()
    loaded = migrate_state_dict(load_file(str(weights)))
    if any(k.startswith("encoders.") and (k not in loaded or loaded[k].shape != v.shape) for k, v in own.items()):
        raise ValueError(f"--init-from {run}: its encoders do not match this run's model options")
    method.load_state_dict({k: v for k, v in loaded.items() if k in own and own[k].shape == v.shape}, strict=False)


def _param_groups(cfg: TrainConfig, method) -> list[dict]:
    """One group, or the trunk apart at ``cfg.trunk_lr_scale`` × the learning rate (frozen at 0)."""
    if cfg.trunk_lr_scale == 1.0:
        return [{"params": list(method.parameters()), "lr_scale": 1.0}]
    if cfg.trunk_lr_scale < 0:
        raise ValueError(f"trunk_lr_scale must be >= 0, got {cfg.trunk_lr_scale}")
    trunk = {id(p) for m in method.trunk_modules() for p in m.parameters()}
    if not trunk:
        raise ValueError(f"trunk_lr_scale {cfg.trunk_lr_scale}: the encoders of method {cfg.method!r} do not say "
                         "which layers are their trunk (trunk_modules)")
    if cfg.trunk_lr_scale == 0:
        method.freeze_trunk()
    head = [p for p in method.parameters() if id(p) not in trunk]
    groups = [{"params": head, "lr_scale": 1.0}]
    if cfg.trunk_lr_scale > 0:
        groups.append({"params": [p for p in method.parameters() if id(p) in trunk], "lr_scale": cfg.trunk_lr_scale})
    return groups


def _optimizer(cfg: TrainConfig, method):
    groups = _param_groups(cfg, method)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r} (adam | adamw)")


class _Logs:
    """Running sums of the method's logged tensors, synced to Python floats only on ``sync``
    (every ``log_every`` steps), so a CUDA step does not wait on the host."""

    def __init__(self, state: dict):
        self.state, self.pending = state, {}

    def add(self, logs: dict[str, torch.Tensor]) -> None:
        for k, v in logs.items():
            v = v.detach().float() if torch.is_tensor(v) else torch.tensor(float(v))
            self.pending[k] = self.pending[k] + v if k in self.pending else v
        self.state["epoch_count"] += 1

    def sync(self) -> dict[str, float]:
        sums = self.state["epoch_sums"]
        for k, v in self.pending.items():  # every process syncs at the same steps, keys in the same order
            sums[k] = sums.get(k, 0.0) + float(dist.all_reduce_mean(v))
        self.pending = {}
        return {k: v / max(self.state["epoch_count"], 1) for k, v in sums.items()}


def _write_new_run(run: Path, cfg: TrainConfig, ds, spec) -> None:
    (run / "config.json").write_text(json.dumps({
        **cfg.to_json(), "config_version": CONFIG_VERSION, "spec": spec.to_json(), "git_commit": git_commit(),
        "n_train_clips": len(ds), "n_train_identities": spec.n_classes, "torch": torch.__version__,
        "machine": f"{platform.machine()} {os.cpu_count()} cores"}, indent=1))
    (run / "train_clips.json").write_text(json.dumps(ds.sample_names()))
    (run / "metrics.jsonl").write_text("")


class _Step(torch.nn.Module):
    """``method.training_step`` as a module's forward, so DistributedDataParallel can wrap it."""

    def __init__(self, method):
        super().__init__()
        self.method = method

    def forward(self, batch):
        return self.method.training_step(batch)


def _stepper(method, device: torch.device):
    """The callable that runs a step: the method itself, or DDP around it under torchrun (with
    SyncBatchNorm on CUDA; gloo on CPU has none, so BatchNorm statistics stay per process there)."""
    if not dist.is_distributed():
        return method.training_step
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        method = torch.nn.SyncBatchNorm.convert_sync_batchnorm(method)
    # Memory banks are updated identically on every process from the gathered batch: no buffer
    # broadcast. A method that leaves parameters unused in some steps says so (ddp_unused_parameters).
    return DistributedDataParallel(_Step(method), device_ids=[device.index] if device.type == "cuda" else None,
                                   broadcast_buffers=False,
                                   find_unused_parameters=getattr(method, "ddp_unused_parameters", False))


def train_unless_done(cfg: TrainConfig, progress: bool = True) -> Path:
    """Train ``cfg`` unless its run has finished (``model.safetensors`` there), resuming from its
    checkpoint when one is there: what a sweep or benchmark calls so an interrupted one picks up."""
    run = Path(cfg.out)
    if not (run / "model.safetensors").exists():
        train(cfg, resume=(run / "checkpoint.safetensors").exists(), progress=progress)
    return run


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True,
          on_epoch: Callable[[dict], None] | None = None, stop_after_steps: int | None = None) -> Path:
    """Train ``cfg`` into ``cfg.out``; ``resume`` continues from its checkpoint.

    Under ``torchrun`` every process runs this; ``cfg.batch_size`` is the global batch, split
    across processes; rank 0 writes the run folder. ``on_epoch`` receives each epoch's metrics
    (the notebook's live plot); ``stop_after_steps`` ends the process's work early, as a kill
    would (used to test resuming).
    """
    threads = torch.get_num_threads()
    try:
        return _train(cfg, resume, progress, on_epoch, stop_after_steps)
    finally:  # the loop picks its own CPU threads; the caller (a notebook, a test) keeps its own
        torch.set_num_threads(threads)


def _train(cfg: TrainConfig, resume: bool, progress: bool, on_epoch, stop_after_steps) -> Path:
    run = Path(cfg.out)
    ckpt = run / "checkpoint.safetensors"
    if ckpt.exists() and not resume:
        raise FileExistsError(f"{run} already holds a run; pass --resume to continue it or choose another --out")
    if resume and not ckpt.exists():
        raise FileNotFoundError(f"cannot resume: {ckpt} does not exist")
    if resume:  # the run's own config wins, so a resumed run is the same run
        cfg = TrainConfig.from_json(json.loads((run / "config.json").read_text()))
    cfg = resolve_task(cfg)
    cfg.method_config(), cfg.task_config()  # refuse unknown options before any work
    if cfg.early_stop < 0 or (cfg.threads is not None and cfg.threads < 1):
        raise ValueError(f"early_stop must be >= 0 and threads >= 1 (got {cfg.early_stop}, {cfg.threads})")
    if cfg.sampling not in ("epoch", "replacement"):
        raise ValueError(f"sampling must be 'epoch' or 'replacement', got {cfg.sampling!r}")
    if cfg.early_stop and not cfg.val_every:
        raise ValueError(f"early_stop {cfg.early_stop} needs validation scores: set val_every > 0")
    device = resolve_device(cfg.device)
    device = dist.setup(device.type) or device
    if device.type == "cpu":
        torch.set_num_threads(cfg.threads or default_threads(cfg.n_workers, dist.world_size()))
    main = dist.is_main()
    progress = progress and main
    if main:
        run.mkdir(parents=True, exist_ok=True)
    ds, method = build(cfg, progress)
    method.to(device)
    step_fn = _stepper(method, device)
    opt = _optimizer(cfg, method)
    loader, sampler = make_loader(ds, cfg.batch_size, cfg.seed, cfg.n_workers, pin_memory=device.type == "cuda",
                                  rank=dist.rank(), world=dist.world_size(), replacement=cfg.sampling == "replacement")
    steps_per_epoch = sampler.batches_per_epoch
    if steps_per_epoch == 0:
        raise ValueError(f"batch size {cfg.batch_size} is larger than the {len(ds)} training samples of {cfg.data}")
    total = steps_per_epoch * cfg.epochs
    warmup = int(cfg.warmup_epochs * steps_per_epoch)

    state = {"step": 0, "epoch_sums": {}, "epoch_count": 0, "epoch_start_time": None}
    if resume:
        state, extra = load_checkpoint(ckpt, method, opt)
        method.load_extra_tensors(extra)
    elif main:
        _write_new_run(run, cfg, ds, TASKS.get(cfg.task).data_spec(ds))
    if main and hasattr(ds, "write_bad_clips"):  # the samples left out of training, and why
        ds.write_bad_clips(run)
    if main:
        _truncate_metrics(run / "metrics.jsonl", state["step"] // steps_per_epoch)
    # TensorBoard events beside metrics.jsonl; purge_step hides what a killed process wrote after its checkpoint.
    events = tblog.EventLog(run, purge_step=state["step"] if resume else None) if main else None
    validator = TASKS.get(cfg.task).validator(cfg.data, cfg.task_config(), cfg.n_workers) if cfg.val_every and main \
        else None
    autocast = (torch.autocast(device_type="cuda", dtype=torch.bfloat16) if cfg.amp and device.type == "cuda"
                else nullcontext())

    def checkpoint():
        if main:  # every process holds the same state; one writes it (atomically)
            save_checkpoint(ckpt, method, opt, method.extra_tensors(), state)

    method.train()
    bar = tqdm(total=total, initial=state["step"], desc=f"{cfg.method} {run.name}", unit="step", disable=not progress)
    steps_this_process = 0
    while state["step"] < total:
        epoch, within = divmod(state["step"], steps_per_epoch)
        if within == 0:
            state.update(epoch_sums={}, epoch_count=0, epoch_start_time=time.time(),
                         epoch_info=method.on_epoch_start(epoch, run if main else None))
        logs = _Logs(state)
        sampler.set_epoch(epoch, within)
        t_epoch = time.time()
        for batch in loader:
            batch = to_device(batch, device)
            for g in opt.param_groups:
                g["lr"] = g.get("lr_scale", 1.0) * lr_at(state["step"], total, warmup, cfg.lr, cfg.min_lr)
            with autocast:
                loss, step_logs = step_fn(batch)
            # On the CPU every step is checked (free); on CUDA or across processes only every
            # log_every steps, on the loss averaged over processes so that all of them stop together.
            check_now = (device.type == "cpu" and not dist.is_distributed()) or (state["step"] + 1) % cfg.log_every == 0
            if check_now and not torch.isfinite(dist.all_reduce_mean(loss.detach())):
                if device.type == "cpu":
                    checkpoint()  # the state before this step is still good
                raise FloatingPointError(f"loss became {loss.item()} at step {state['step']} (epoch {epoch}); "
                                         f"the last good state is in {ckpt}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(method.parameters(), cfg.grad_clip)
            opt.step()
            state["step"] += 1
            steps_this_process += 1
            logs.add(step_logs)
            bar.update()
            if state["step"] % cfg.log_every == 0:
                synced = logs.sync()
                bar.set_postfix(loss=f"{synced['loss']:.3f}", epoch=epoch)
                if events is not None:
                    events.scalars(state["step"], {"step/loss": synced["loss"], "step/lr": opt.param_groups[0]["lr"]})
            if state["step"] % cfg.checkpoint_every == 0:
                logs.sync()
                checkpoint()
            if stop_after_steps is not None and steps_this_process >= stop_after_steps:
                bar.close()
                if events is not None:
                    events.close()
                return run
        means = logs.sync()
        elapsed = max(time.time() - t_epoch, 1e-9)
        if validator is not None and ((epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs):
            means.update(_validate(validator, method, state, epoch, run, cfg))
        record = {"epoch": epoch, "step": state["step"], "lr": opt.param_groups[0]["lr"], **means,
                  **{f"cluster_{k}": v for k, v in (state.get("epoch_info") or {}).items()},
                  "seconds": round(elapsed, 3),
                  "clips_per_s": round((steps_per_epoch - within) * cfg.batch_size / elapsed, 1),
                  "processes": dist.world_size()}
        if main:
            with open(run / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            events.scalars(state["step"], tblog.epoch_scalars(record))
        checkpoint()
        if on_epoch and main:
            on_epoch(record)
        if cfg.early_stop and _patience_spent(state, epoch, cfg):
            if main:
                print(f"{run.name}: no better validation score for {epoch - state['best_epoch']} epochs; "
                      f"stopping early at epoch {epoch} (best: epoch {state['best_epoch']})", file=sys.stderr)
            break
    bar.close()
    if main:
        save_weights(run / "model.safetensors", method, {"method": cfg.method, "config": json.dumps(cfg.to_json())})
        events.close()
    dist.barrier()  # the run folder is complete before any process moves on (e.g. to evaluate)
    return run


def _validate(validator, method, state: dict, epoch: int, run: Path, cfg: TrainConfig) -> dict:
    """Score the validation split; keep ``best.safetensors`` when it is the best so far. Runs on
    rank 0 only (the others wait in their next collective)."""
    score = float(validator(method))
    method.train()
    best = state.get("best_score")
    if best is None or score > best:
        state.update(best_score=score, best_epoch=epoch)
        save_weights(run / "best.safetensors", method, {"method": cfg.method, "epoch": str(epoch),
                                                        validator.metric: str(score)})
    return {validator.metric: score, "best_epoch": state["best_epoch"]}


def _patience_spent(state: dict, epoch: int, cfg: TrainConfig) -> bool:
    """Whether ``cfg.early_stop`` validations have passed without a better score (rank 0 knows;
    every process gets its answer, so all stop together)."""
    best = state.get("best_epoch")
    return bool(dist.broadcast_object(best is not None and epoch - best >= cfg.early_stop * max(cfg.val_every, 1)))


def _truncate_metrics(path: Path, epochs_done: int) -> None:
    """Drop epoch lines a killed run wrote after its last checkpoint (they are recomputed)."""
    if not path.exists():
        return
    lines = [l for l in path.read_text().splitlines() if l.strip()]
    keep = [l for l in lines if json.loads(l)["epoch"] < epochs_done]
    if len(keep) != len(lines):
        path.write_text("".join(l + "\n" for l in keep))

