"""The sound-localisation task: VGGSound-layout clips; localise the sound in the frame, ground it in
frequency, and classify it from either modality's frozen embedding."""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from avlab.data.features import MelConfig
from avlab.data.manifest import write_manifest
from avlab.methods.base import ModalitySpec
from avlab.tasks.base import Task, register_task


@register_task("sound-localisation")
class SoundLocalisationTask(Task):
    description = "where is the sound in the frame, which bands carry it (CMAC; VGG-SS cIoU/AUC, probes)"
    layout = "vggsound.csv (video_id,start_seconds,label,split) + video/<id>_<start>.mp4 (VGGSound), vggss.json"
    # Order matters: the first modality is the anchor of the "a2b" direction (a2i).
    modalities = {"audio": ModalitySpec("spectrogram", 1), "image": ModalitySpec("image", 3)}
    benchmarks = {"sounding-objects": "VGGSound/VGG-SS-like scenes: one object sounds (motion follows its "
                                      "sound), silent distractors, known boxes and frequency bands"}
    datasets = ("vggsound", "vgg-ss")
    key_metrics = ("localisation/beta_v/ciou@0.5", "localisation/beta_v/auc", "localisation/alpha_v/ciou@0.5",
                   "localisation/alpha_v/auc", "frequency/alpha_a/mass", "frequency/alpha_a/ap",
                   "probe/linear/audio", "probe/linear/image", "probe/knn/audio", "probe/knn/image")
    headline_split = "test"
    notebooks = ("08_attention",)

    @dataclass
    class Config:
        image_size: int = 64  # frame side in pixels
        n_mels: int = 64
        crop_seconds: float = 1.0  # audio window
        augment: bool = True  # frame crop/flip/colour jitter, audio gain/noise

    def recognises(self, root: Path) -> bool:
        return (root / "vggsound.csv").is_file() and (root / "video").is_dir()

    def generate(self, benchmark: str, out: str | os.PathLike, profile: str = "quick", workers: int = 2,
                 progress: bool = True, **options) -> Path:
        from avlab.data.synth.sounding_objects import SoundingObjectsConfig

        if benchmark not in self.benchmarks:
            raise ValueError(f"task {self.name!r} has no benchmark {benchmark!r}; it has {sorted(self.benchmarks)}")
        cfg = SoundingObjectsConfig.from_profile(profile, **options)
        return generate_sounding_objects(cfg, out, workers, progress, profile=profile)

    def dataset(self, data, cfg, splits=("train",), train: bool = True, workers: int = 2, progress: bool = True):
        from avlab.data.vggsound import LocalisationDataset

        return LocalisationDataset(data, splits, image_size=cfg.image_size, crop_seconds=cfg.crop_seconds,
                                   train=train, mel=MelConfig(n_mels=cfg.n_mels), workers=workers,
                                   progress=progress, augment=cfg.augment)

    def train_dataset(self, data, cfg, workers: int = 2, progress: bool = True):
        return self.dataset(data, cfg, ("train",), True, workers, progress)

    def cache_parts(self, data, cfg, workers: int = 2, progress: bool = True) -> dict:
        # training and the protocol read one cache per split
        return {split: partial(self.dataset, data, cfg, (split,), False, workers, progress)
                for split in ("train", "test")}

    def evaluate(self, run: Path, cfg, method, data: Path, progress: bool = True, **options) -> dict:
        from avlab.tasks.localisation.protocol import evaluate

        return evaluate(run, cfg, method, data, progress=progress, **options)

    def demo_tabs(self, run: Path, **options):
        from avlab.tasks.localisation.demo import demo_tabs

        return demo_tabs(run, **options)


def generate_sounding_objects(cfg, out: str | os.PathLike, workers: int = 2, progress: bool = True,
                              profile: str = "custom") -> Path:
    """The sounding-objects benchmark: media and boxes (the generator), the oracle's ceilings (this
    task), then the manifest that names the task (written last: its presence means finished)."""
    from avlab.data.synth.sounding_objects import generate
    from avlab.tasks.localisation.oracle import write_oracle

    out = generate(cfg, out, workers=workers, progress=progress)
    write_oracle(out)
    write_manifest(out, "sound-localisation", benchmark="sounding-objects", profile=profile)
    return out
