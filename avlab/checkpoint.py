"""Checkpoints as safetensors, written atomically, holding everything an exact resume needs.

safetensors stores flat tensors plus string metadata, never pickles, so a checkpoint is safe to
load from anywhere (the demo loads user-shared runs). The optimizer's nested state is flattened
to ``optim.<param>.<key>`` tensors with its param groups as JSON metadata.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], str]:
    tensors = {}
    scalars = {}
    for pid, entry in state["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{key}"] = value.detach().clone().contiguous()
            else:
                scalars[f"{pid}.{key}"] = value
    return tensors, json.dumps({"param_groups": state["param_groups"], "scalars": scalars})


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: str) -> dict:
    info = json.loads(meta)
    state: dict = {}
    for name, value in tensors.items():
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = value
    for name, value in info["scalars"].items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    return {"state": state, "param_groups": info["param_groups"]}


def atomic_save(tensors: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str]) -> None:
    """Write to a temporary file beside ``path`` and rename: a crash never leaves half a checkpoint."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def save_checkpoint(path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, extra: dict[str, torch.Tensor],
                    state: dict) -> None:
    opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update(opt_tensors)
    tensors.update({f"extra.{k}": v for k, v in extra.items()})
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    atomic_save(tensors, path, {"optimizer": opt_meta, "state": json.dumps(state)})


def load_checkpoint(path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> tuple[dict, dict]:
    """Restore in place; returns (loop state, extra tensors)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    tensors = load_file(str(path))
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    if optimizer is not None:
        optimizer.load_state_dict(_unflatten_optimizer(
            {k: v for k, v in tensors.items() if k.startswith("optim.")}, meta["optimizer"]))
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    extra = {k[6:]: v for k, v in tensors.items() if k.startswith("extra.")}
    return json.loads(meta.get("state", "{}")), extra


def save_weights(path, model: torch.nn.Module, metadata: dict[str, str]) -> None:
    atomic_save(dict(model.state_dict()), path, metadata)


def load_weights(path, model: torch.nn.Module) -> dict[str, str]:
    from safetensors import safe_open

    model.load_state_dict(load_file(str(path)))
    with safe_open(str(path), "pt") as f:
        return f.metadata() or {}
