"""Data parallelism under ``torchrun``: ranks, gathering with gradients, broadcasting.

One process per device; ``torchrun`` sets RANK / WORLD_SIZE / LOCAL_RANK and :func:`setup` joins
the process group (NCCL on GPUs, gloo on CPUs). Everything here is a no-op in a single process,
so methods call :func:`gather` unconditionally.

Gathering negatives. A contrastive loss wants the whole global batch as negatives. open_clip
gathers the other ranks' features without gradients and puts the local tensor (which has them)
back in its slice; with a per-rank loss over local anchors that drops the gradient that *other*
ranks' anchors send to this rank's samples (they are negatives there), and with the full-batch
loss on every rank the gradient is right only up to a factor of the world size for parameters
used before the gather and not after. :func:`gather` is differentiable end to end instead: the
backward pass sums every rank's gradient for each slice (an all-reduce) and hands each rank its
own. Each rank then takes the mean loss over its local anchors against the gathered batch, and
DDP's gradient averaging gives exactly the global batch's gradient — for every parameter (tested
against one process on the same global batch, tests/test_ddp.py).
"""
from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as tdist


def is_distributed() -> bool:
    return tdist.is_available() and tdist.is_initialized()


def rank() -> int:
    return tdist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return tdist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device_type: str) -> torch.device | None:
    """Join the process group when launched by torchrun; returns this rank's device (None: single)."""
    if not launched_by_torchrun():
        return None
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not is_distributed():
        backend = "nccl" if device_type == "cuda" else "gloo"
        tdist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    if device_type == "cuda":
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def teardown() -> None:
    if is_distributed():
        tdist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        tdist.barrier()


class _Gather(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(world_size())]
        tdist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        tdist.all_reduce(grad)  # every rank's gradient for every slice, summed
        n = grad.shape[0] // world_size()
        return grad[rank() * n:(rank() + 1) * n]


def gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every rank in rank order (equal shapes), differentiable to every
    rank's slice; ``x`` itself in one process. Local rows sit at :func:`offset`."""
    if not is_distributed():
        return x
    if x.requires_grad:
        return _Gather.apply(x)
    parts = [torch.empty_like(x) for _ in range(world_size())]
    tdist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def offset(local_batch: int) -> int:
    """Where this rank's rows start in a gathered batch."""
    return rank() * local_batch


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    if not is_distributed():
        return x
    x = x.clone()
    tdist.all_reduce(x)
    return x / world_size()


def broadcast_object(obj, src: int = 0):
    """``obj`` from rank ``src`` on every rank (pickled; for small state such as a clustering)."""
    if not is_distributed():
        return obj
    box = [obj if rank() == src else None]
    tdist.broadcast_object_list(box, src=src)
    return box[0]
