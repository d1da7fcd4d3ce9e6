"""Is data parallelism exact? One training step of a method on a fixed global batch — in one
process, or in each process of a ``torchrun`` group on its share of the batch — and the loss,
gradients and memory banks of both, for tests/test_ddp.py and benchmarks/ddp.py.

    torchrun --standalone --nproc_per_node 2 -m avlab.ddp_check OUT.pt METHOD
"""
import sys

import torch

from avlab import dist
from avlab.methods import METHODS, DataSpec, ModalitySpec, ModelConfig, create_method

N_TRAIN, GLOBAL_BATCH = 32, 8


# The two streams of the check: a spectrogram and an image, named as the method's task names them.
STREAMS = {"cmac": ("sound-localisation", "audio", "image")}
DEFAULT_STREAMS = ("voice-face", "voice", "face")


def make(name: str):
    torch.manual_seed(0)
    task, sound, picture = STREAMS.get(name, DEFAULT_STREAMS)
    spec = DataSpec(task, {sound: ModalitySpec("spectrogram", 1), picture: ModalitySpec("image", 3)}, N_TRAIN, 4)
    options = {"cluster_warmup_epochs": 0, "num_prototypes": (3, 5)} if name == "cmpc" else {}
    method = create_method(name, spec, ModelConfig(embed_dim=16), METHODS.get(name).Config(**options))
    # BatchNorm from running statistics: on CPU (gloo has no SyncBatchNorm) batch statistics would
    # differ between one process and two by construction; this test is about the gathered loss.
    return method.eval()


def global_batch(name: str = "") -> dict:
    g = torch.Generator().manual_seed(1)
    _, sound, picture = STREAMS.get(name, DEFAULT_STREAMS)
    return {sound: torch.randn(GLOBAL_BATCH, 64, 40, generator=g),
            picture: torch.randn(GLOBAL_BATCH, 3, 32, 32, generator=g),
            "index": torch.randperm(N_TRAIN, generator=g)[:GLOBAL_BATCH],
            "label": torch.arange(GLOBAL_BATCH) % 4}


def one_step(method, batch: dict, step_fn) -> dict:
    method.on_epoch_start(0)  # CMPC clusters its (identical) banks on rank 0 and broadcasts
    loss, logs = step_fn(batch)
    loss.backward()
    out = {"loss": dist.all_reduce_mean(loss.detach()),
           **{f"grad.{k}": p.grad.detach().clone() for k, p in method.named_parameters() if p.grad is not None}}
    out.update({f"buffer.{k}": b.clone() for k, b in method.named_buffers() if k.endswith("_bank")})
    return out


def main(out: str, name: str) -> None:
    from avlab.train import _stepper

    device = dist.setup("cpu")
    method = make(name)
    share = GLOBAL_BATCH // dist.world_size()
    local = {k: v[dist.rank() * share:(dist.rank() + 1) * share] for k, v in global_batch(name).items()}
    result = one_step(method, local, _stepper(method, device))
    if dist.is_main():
        torch.save(result, out)
    dist.teardown()


def compare(single: dict, ddp: dict) -> float:
    """The largest difference between the two steps, relative to each tensor's largest entry
    (elementwise relative error is meaningless for entries near zero)."""
    if single.keys() != ddp.keys():
        raise ValueError(f"different outputs: {sorted(set(single) ^ set(ddp))}")
    return max(float((ddp[k] - single[k]).abs().max() / (single[k].abs().max() + 1e-12)) for k in single)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
