"""The Task API: what belongs to one kind of data and protocol.

A task bundles its benchmark generator(s) and real-data layouts, its dataset and collation, its
protocol evaluator (→ ``eval.json`` and an outputs file), its key metrics, the notebook views it
offers and its demo tabs. Tasks register by name (``@register_task``) in :data:`avlab.registry.TASKS`;
the training loop, ``avlab eval``, the notebooks and the demo look the run's task up there and
never name one.

The dataset a task returns for training is a map-style dataset with:
``len``; ``ds[(epoch, i)]`` (a sample whose randomness depends on (``ds.seed``, epoch, i) only);
``collate(samples) -> batch`` (a dict of tensors keyed by modality, plus ``index`` and
``label``); ``n_classes``; ``subset(fraction, seed)``; ``sample_names()``.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from avlab.methods.base import DataSpec, ModalitySpec
from avlab.registry import METHODS, TASKS


def register_task(name: str):
    """``@register_task("voice-face")`` on a :class:`Task` subclass; the registry holds an instance."""
    def wrap(cls):
        TASKS.register(name)(cls())
        cls.name = name
        return cls
    return wrap


class Task(ABC):
    name = "base"
    description = ""
    layout = ""  # the real-data layout(s) it reads, in words
    modalities: dict[str, ModalitySpec] = {}
    benchmarks: dict[str, str] = {}  # synthetic benchmark name → what it is
    datasets: tuple[str, ...] = ()  # real datasets it reads
    key_metrics: tuple[str, ...] = ()  # flattened metric keys, headline first
    headline_split = ""  # the split whose metrics are the headline (e.g. unseen identities)
    notebooks: tuple[str, ...] = ()  # task-specific notebook views (besides the generic ones)
    class_noun = "classes"  # what its labels are, in the run card ("identities", "words")
    # What a model trained on the task's synthetic benchmark means for a visitor's own media (run card).
    synthetic_note = ("The model has never seen real media: on your own files its scores only say how they compare "
                      "in a feature space learnt from generated ones.")

    @dataclass
    class Config:
        pass

    # --- data ------------------------------------------------------------------------------------
    @abstractmethod
    def recognises(self, root: Path) -> bool:
        """True when ``root`` (with no manifest) is in a layout this task reads."""

    @abstractmethod
    def generate(self, benchmark: str, out: str | os.PathLike, profile: str = "quick", workers: int = 2,
                 progress: bool = True, **options) -> Path:
        """Write synthetic benchmark ``benchmark`` (with its manifest) under ``out``."""

    @abstractmethod
    def train_dataset(self, data: str | os.PathLike, cfg, workers: int = 2, progress: bool = True):
        """The training split of ``data`` as a dataset (see the module docstring)."""

    def cache_parts(self, data: str | os.PathLike, cfg, workers: int = 2, progress: bool = True) -> dict:
        """What training and the protocol decode into the task's decoded-clip cache with ``cfg``, by
        name (e.g. ``{"train": build, "test": build}``): each callable decodes one part (a no-op when it
        is cached). A task that reads its files directly has none."""
        return {}

    def warm_cache(self, data: str | os.PathLike, cfg, parts=None, workers: int = 2,
                   progress: bool = True) -> list[str]:
        """Decode ``parts`` (default: all of :meth:`cache_parts`) now, so that training and evaluation
        start at once (``avlab prepare cache``, e.g. before several runs on one set start together
        and would each decode it). Returns the parts decoded."""
        available = self.cache_parts(data, cfg, workers, progress)
        chosen = list(available) if parts is None else list(parts)
        unknown = [p for p in chosen if p not in available]
        if unknown:
            raise ValueError(f"task {self.name!r} caches {', '.join(available) or 'nothing'}; "
                             f"it has no part(s) {unknown}")
        for part in chosen:
            available[part]()
        return chosen

    def data_spec(self, dataset) -> DataSpec:
        return DataSpec(self.name, dict(self.modalities), len(dataset), dataset.n_classes)

    def example_batch(self, n: int = 8, classes: int = 4, side: int = 48, frames: int = 101, bins: int = 64,
                      seed: int = 0) -> dict:
        """A random batch shaped like this task's collated batches (tests of every method × task): an
        ``image`` is (n, C, side, side), a ``spectrogram`` (n, bins, frames), a ``video`` (n, C, 8, side,
        side), a ``sequence`` (n, frames, C); plus ``index`` and ``label``. A task whose batches differ
        overrides it."""
        import torch

        g = torch.Generator().manual_seed(seed)
        shapes = {"image": lambda c: (n, c, side, side), "spectrogram": lambda c: (n, bins, frames),
                  "video": lambda c: (n, c, 8, side, side), "sequence": lambda c: (n, frames, c)}
        batch = {}
        for m, spec in self.modalities.items():
            if spec.kind not in shapes:
                raise ValueError(f"task {self.name!r}: no example shape for modality kind {spec.kind!r}; "
                                          "override example_batch")
            batch[m] = torch.randn(shapes[spec.kind](spec.channels), generator=g)
        return {**batch, "index": torch.arange(n), "label": torch.arange(n) % classes}

    def prepare_shards(self, data, out, cfg, splits=None, shard_size: int = 256, workers: int = 2,
                       progress: bool = True) -> Path:
        """Pre-decode ``data`` into WebDataset shards under ``out`` that ``train_dataset`` and
        ``evaluate`` read like the raw layout (``avlab prepare shards``)."""
        raise ValueError(f"task {self.name!r} reads its raw layout only; `avlab prepare shards` is available for "
                         f"{', '.join(n for n, t in TASKS.items() if type(t).prepare_shards is not Task.prepare_shards)}")

    # --- evaluation ------------------------------------------------------------------------------
    @abstractmethod
    def evaluate(self, run: Path, cfg, method, data: Path, progress: bool = True, **options) -> dict:
        """Score a trained method with the protocol; write ``run/eval.json`` and return it."""

    def validator(self, data, cfg, workers: int = 2):
        """A callable ``method -> float`` (higher is better) on the data's validation split — never
        the test split — that the loop runs every ``val_every`` epochs to keep ``best.safetensors``;
        None when the task or the data has no validation split. It has a ``metric`` name."""
        return None

    def headline(self, result: dict) -> dict[str, float]:
        """The key metrics of an ``eval.json`` result, flattened (``{"verification/U/auc": …}``)."""
        from avlab.eval.tree import flatten

        flat = flatten(result["metrics"].get(self.headline_split, result["metrics"]))
        return {k: flat[k] for k in self.key_metrics if k in flat}

    # --- views -----------------------------------------------------------------------------------
    def methods(self) -> list[str]:
        """The registered methods that fit this task."""
        spec = DataSpec(self.name, dict(self.modalities))
        fits = []
        for name, cls in METHODS.items():
            try:
                cls.check_fits(spec)
                fits.append(name)
            except ValueError:
                pass
        return fits

    def demo_tabs(self, run: Path, **options):
        """The demo page's part for a run of this task: an object with ``intro`` (a line of markdown)
        and ``render(files)`` (creates its Gradio tabs in the current Blocks), or None: no demo."""
        return None
