"""The voice-face task: VoxCeleb-layout talking-face clips, matched across voice and face."""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from avlab.data.features import MelConfig
from avlab.data.manifest import write_manifest
from avlab.methods.base import ModalitySpec
from avlab.tasks.base import Task, register_task


@register_task("voice-face")
class VoiceFaceTask(Task):
    description = "match voices and faces of unseen identities (CMPC; VoxCeleb protocol)"
    layout = ("{dev,test}/mp4/<identity>/<video>/<utt>.mp4 (VoxCeleb2), or wav/<id>/<video>/<utt>.wav + "
              "vox1_meta.csv + unzippedFaces/<name>/1.6/<video>/*.jpg (VoxCeleb1)")
    # Order matters: the first modality is the anchor of the "a2b" direction (v2f).
    modalities = {"voice": ModalitySpec("spectrogram", 1), "face": ModalitySpec("image", 3)}
    benchmarks = {"talking-faces": "VoxCeleb-like procedural talking faces with coupled voice/face latents"}
    datasets = ("voxceleb1", "voxceleb2")
    key_metrics = ("verification/U/auc", "verification/G/auc", "verification/U/eer", "matching_1to2/v2f/U",
                   "matching_1to2/v2f/G", "matching_1to2/f2v/U", "matching_1to2/f2v/G", "retrieval_map/v2f",
                   "retrieval_map/f2v")
    headline_split = "unseen_unheard"
    notebooks = ("02_cluster_inspection", "03_embedding_umap")
    class_noun = "identities"
    synthetic_note = ("The model has never seen a real face or heard a real voice: on your own photos and recordings "
                      "its scores only say how they compare in a feature space learnt from drawn faces and "
                      "synthesised voices — not who they resemble. Expect real media to score alike whatever they "
                      "show (such uploads are marked *out of domain*).")

    @dataclass
    class Config:
        face_size: int = 64  # face crop side in pixels (CMPC: 224)
        crop_seconds: float = 2.0  # voice window
        n_mels: int = 64
        augment: bool = True  # face crop/colour jitter, voice gain/noise (avlab.data.voxceleb)
        on_bad: str = "skip"  # a clip that cannot be decoded: "skip" (leave it out, list it) | "fail" (stop)
        items: str = "clip"  # training items (and memory-bank entries): clip | video (CMPC's released loader: a
        # random utterance of the video each time)

    def recognises(self, root: Path) -> bool:
        from avlab.data.voxceleb1 import is_voxceleb1

        return (root / "dev" / "mp4").is_dir() or (root / "test" / "mp4").is_dir() or is_voxceleb1(root)

    def generate(self, benchmark: str, out: str | os.PathLike, profile: str = "quick", workers: int = 2,
                 progress: bool = True, **options) -> Path:
        from avlab.data.synth.talking_faces import TalkingFacesConfig

        if benchmark not in self.benchmarks:
            raise ValueError(f"task {self.name!r} has no benchmark {benchmark!r}; it has {sorted(self.benchmarks)}")
        return generate_talking_faces(TalkingFacesConfig.from_profile(profile, **options), out, workers, progress,
                                      profile=profile)

    def train_dataset(self, data, cfg, workers: int = 2, progress: bool = True):
        from avlab.data.voxceleb import VoiceFaceDataset

        if cfg.items not in ("clip", "video"):
            raise ValueError(f"voice-face: items must be 'clip' or 'video', got {cfg.items!r}")
        ds = VoiceFaceDataset(data, ("train",), face_size=cfg.face_size, crop_seconds=cfg.crop_seconds, train=True,
                              mel=MelConfig(n_mels=cfg.n_mels), workers=workers, progress=progress,
                              augment=cfg.augment, on_bad=cfg.on_bad)
        if cfg.items == "video":
            ds.group_by_video()
        return ds

    def prepare_shards(self, data, out, cfg, splits=None, shard_size: int = 256, workers: int = 2,
                       progress: bool = True) -> Path:
        from avlab.tasks.voiceface.shards import SPLITS, prepare_shards

        return prepare_shards(data, out, cfg, splits or SPLITS, shard_size, workers=workers, progress=progress)

    def validator(self, data, cfg, workers: int = 2):
        from avlab.tasks.voiceface.protocol import ValidationAUC

        return ValidationAUC.for_data(data, cfg, workers)

    def cache_parts(self, data, cfg, workers: int = 2, progress: bool = True) -> dict:
        from avlab.tasks.voiceface.protocol import eval_dataset

        return {"train": partial(self.train_dataset, data, cfg, workers, progress),
                "val": partial(self.validator, data, cfg, workers),  # when the data has val clips
                "protocol": partial(eval_dataset, Path(data), cfg, workers, progress)}  # every split it scores

    def evaluate(self, run: Path, cfg, method, data: Path, progress: bool = True, **options) -> dict:
        from avlab.tasks.voiceface.protocol import evaluate

        return evaluate(run, cfg, method, data, progress=progress, **options)

    def demo_tabs(self, run: Path, **options) -> list:
        from avlab.tasks.voiceface.demo import demo_tabs

        return demo_tabs(run, **options)


def generate_talking_faces(cfg, out: str | os.PathLike, workers: int = 2, progress: bool = True,
                           profile: str = "custom") -> Path:
    """The talking-faces benchmark: media and lists (the generator), the oracle's figures through
    the protocol (this task), and the manifest that names the task."""
    from avlab.data.synth.talking_faces import generate
    from avlab.tasks.voiceface.oracle import write_oracle

    out = generate(cfg, out, workers=workers, progress=progress)
    write_oracle(out)
    write_manifest(out, "voice-face", benchmark="talking-faces", profile=profile)
    return out
