"""The lip-reading task: LRW-layout mouth clips with their audio, classified by word."""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import torch

from avlab.data.manifest import write_manifest
from avlab.methods.base import ModalitySpec
from avlab.tasks.base import Task, register_task


@register_task("lip-reading")
class LipReadingTask(Task):
    description = "read words from mouth video (ADC-SSL; LRW protocol: word top-1 on test)"
    layout = "lipread_mp4/WORD/{train,val,test}/WORD_00001.mp4 (LRW)"
    # Video first: it is the stream the protocol reads words from. The encoders are the task's
    # defaults for these streams (``--encoder video=…`` overrides them).
    modalities = {"video": ModalitySpec("video", 1, "lip_video_tiny"),
                  "audio": ModalitySpec("sequence", 13, "lip_audio_tiny")}
    benchmarks = {"lip-words": "LRW-like procedural talking mouths; homophenes by construction"}
    datasets = ("lrw",)
    key_metrics = ("frozen/top1", "frozen/top5", "lowshot_10pct/top1", "lowshot_1pct/top1", "finetune/top1",
                   "identity_leakage/speaker_acc", "modality/probe_acc")
    headline_split = "test"
    class_noun = "words"
    synthetic_note = ("The model has never seen a real mouth: it learnt from drawn grey mouths whose shapes follow "
                      "espeak-ng's phonemes. On a real video its words only say which drawn mouth movements it looks "
                      "most like — expect them to be wrong, and homophenes (PAT / BAT / MAT) to be confused even "
                      "on its own data.")
    notebooks = ("07_lipreading",)

    @dataclass
    class Config:
        roi_size: int = 32  # grey mouth ROI side the clips are decoded to (LRW: 96)
        crop_size: int = 28  # random crop in training, centre crop in evaluation (LRW: 88)
        n_mfcc: int = 13
        win_ms: float = 25.0
        hop_ms: float = 10.0  # 10 ms: 4 MFCC frames per 40-ms video frame
        augment: bool = True  # crop/flip/brightness of the video, gain/noise of the audio

    def recognises(self, root: Path) -> bool:
        from avlab.data.lrw import words_dir

        return words_dir(Path(root)) is not None

    def generate(self, benchmark: str, out: str | os.PathLike, profile: str = "quick", workers: int = 2,
                 progress: bool = True, **options) -> Path:
        from avlab.data.synth.lip_words import LipWordsConfig

        if benchmark not in self.benchmarks:
            raise ValueError(f"task {self.name!r} has no benchmark {benchmark!r}; it has {sorted(self.benchmarks)}")
        return generate_lip_words(LipWordsConfig.from_profile(profile, **options), out, workers, progress, profile)

    def train_dataset(self, data, cfg, workers: int = 2, progress: bool = True):
        from avlab.tasks.lipreading.dataset import LipWordsDataset

        return LipWordsDataset(data, ("train",), roi_size=cfg.roi_size, crop_size=cfg.crop_size, n_mfcc=cfg.n_mfcc,
                               win_ms=cfg.win_ms, hop_ms=cfg.hop_ms, train=True, augment=cfg.augment,
                               workers=workers, progress=progress)

    def data_spec(self, dataset):
        spec = super().data_spec(dataset)
        spec.modalities["audio"] = replace(self.modalities["audio"], channels=dataset.n_mfcc)  # --n-mfcc
        return spec

    def validator(self, data, cfg, workers: int = 2):
        from avlab.tasks.lipreading.protocol import ValidationWordKNN

        return ValidationWordKNN.for_data(data, cfg, workers)

    def cache_parts(self, data, cfg, workers: int = 2, progress: bool = True) -> dict:
        from avlab.tasks.lipreading.protocol import eval_dataset

        # training, model selection and the protocol read one cache per split
        return {"train": partial(eval_dataset, Path(data), cfg, "train", workers, progress),
                "val": partial(self.validator, data, cfg, workers),  # when the data has val clips
                "test": partial(eval_dataset, Path(data), cfg, "test", workers, progress)}

    def evaluate(self, run: Path, cfg, method, data: Path, progress: bool = True, **options) -> dict:
        from avlab.tasks.lipreading.protocol import evaluate

        return evaluate(run, cfg, method, data, progress=progress, **options)

    def demo_tabs(self, run: Path, **options):
        from avlab.tasks.lipreading.demo import demo_tabs

        return demo_tabs(run, **options)

    def example_batch(self, n: int = 8, classes: int = 4, side: int = 24, frames: int = 10, seed: int = 0,
                      **_) -> dict:
        """Random tensors shaped like this task's batches: video (n, 1, frames, side, side) and MFCC
        (n, 13, 4·frames) — four audio frames per video frame, as the front-ends require."""
        g = torch.Generator().manual_seed(seed)
        return {"video": torch.randn(n, 1, frames, side, side, generator=g),
                "audio": torch.randn(n, self.modalities["audio"].channels, 4 * frames, generator=g),
                "index": torch.arange(n), "label": torch.arange(n) % classes, "speaker": torch.arange(n) % 3}


def generate_lip_words(cfg, out: str | os.PathLike, workers: int = 2, progress: bool = True,
                       profile: str = "custom") -> Path:
    """The lip-words benchmark: clips and latents (the generator), the oracle (this task), and the
    manifest that names the task (written last: its presence means the set is complete)."""
    from avlab.data.synth.lip_words import generate
    from avlab.tasks.lipreading.oracle import write_oracle

    out = generate(cfg, out, workers=workers, progress=progress)
    write_oracle(out)
    write_manifest(out, "lip-reading", benchmark="lip-words", profile=profile)
    return out
