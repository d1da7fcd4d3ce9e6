"""Seeded, resumable batches through ``torch.utils.data.DataLoader`` workers.

The batch order of epoch ``e`` is a permutation seeded by (seed, e) (or, as CMPC's released code
samples, draws with replacement seeded the same way), and every sample is asked
for as ``(e, i)``: a dataset derives the sample's randomness (crops, augmentation) from (its seed,
e, i) alone. So the batches — and a run's final weights — are the same with 0, 1 or N workers,
and a run resumed mid-epoch continues with exactly the batches an uninterrupted run would see.
Workers persist across epochs (the sampler lives in the main process; its epoch is set there).
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler


class EpochBatchSampler(Sampler):
    """Batches of ``(epoch, index)`` keys, ``n // batch_size`` per epoch (the last partial batch is
    dropped: contrastive losses want full batches), starting at ``start_batch``.

    Under data parallelism ``batch_size`` is the global batch and process ``rank`` of ``world``
    gets its contiguous share of each — so the processes together see exactly the batches one
    process would, every sample once per epoch, and gathering their shares in rank order rebuilds
    the global batch."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1, replacement: bool = False):
        if batch_size % world:
            raise ValueError(f"the batch size {batch_size} is not divisible by the {world} processes")
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.replacement = replacement
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    @property
    def batches_per_epoch(self) -> int:
        return self.n // self.batch_size

    def order(self, epoch: int) -> torch.Tensor:
        """The epoch's sample order: a permutation, or with ``replacement`` n independent uniform draws
        (CMPC's released loader: a clip may come twice in an epoch, even in one batch, and some not
        at all)."""
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        return torch.randint(self.n, (self.n,), generator=g) if self.replacement else torch.randperm(self.n, generator=g)

    def __iter__(self):
        order, bs = self.order(self.epoch), self.batch_size
        share = bs // self.world
        for b in range(self.start_batch, self.batches_per_epoch):
            start = b * bs + self.rank * share
            yield [(self.epoch, int(i)) for i in order[start:start + share]]

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start_batch


def seeded_subset(n: int, fraction: float, seed: int = 0) -> np.ndarray:
    """Sorted indices of a seeded random ``fraction`` of ``n`` samples (at least one): the samples a
    dataset's ``subset`` keeps (low-shot labels), the same for every task.

    >>> seeded_subset(10, 0.3, seed=1).tolist() == seeded_subset(10, 0.3, seed=1).tolist()
    True
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    k = max(1, int(round(fraction * n)))
    return np.sort(np.random.default_rng([seed, 99]).choice(n, k, replace=False))


def _worker_init(_worker_id: int) -> None:
    # Each worker decodes/augments one sample at a time; intra-op threads would only fight the
    # other workers and the training step for the cores.
    torch.set_num_threads(1)


def make_loader(dataset, batch_size: int, seed: int, workers: int, pin_memory: bool = False,
                stall_timeout_s: float = 600.0, rank: int = 0, world: int = 1,
                replacement: bool = False) -> tuple[DataLoader, EpochBatchSampler]:
    """(loader, its sampler): call ``sampler.set_epoch(e, start)`` before iterating an epoch.

    ``dataset.collate`` batches the samples (in the workers); a worker that delivers nothing for
    ``stall_timeout_s`` raises instead of hanging the run.
    """
    sampler = EpochBatchSampler(len(dataset), batch_size, seed, rank, world, replacement)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=dataset.collate, num_workers=workers,
                        persistent_workers=workers > 0, pin_memory=pin_memory, worker_init_fn=_worker_init,
                        timeout=stall_timeout_s if workers > 0 else 0)
    return loader, sampler
