"""The voice-face protocol run on a trained method: ``RUN/eval.json`` and ``RUN/embeddings.npz``.

Test-time averaging as in CMPC's evaluation: a voice is the mean of ``n_voice_crops`` evenly
spaced windows' embeddings, a face the mean of its frame's and its mirror image's. Chance is the
analytic value of each metric (and an identity-permutation null for retrieval); with a synthetic
set, the oracle's figures and the share of the chance-to-oracle gap closed are reported beside.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from avlab.data.features import MelConfig
from avlab.data.voxceleb import VoiceFaceDataset
from avlab.device import to_device
from avlab.eval.bootstrap import bootstrap_parts
from avlab.eval.chance import chance_metrics
from avlab.eval.tree import gap_closed
from avlab.eval.voiceface import missing_paths, point_estimates, scored_parts

SPLITS = ("train", "val", "seen_heard", "unseen_unheard")


def _device(method) -> torch.device:
    return next(method.parameters()).device


@torch.no_grad()
def embed_voices(method, mels: torch.Tensor) -> torch.Tensor:
    """(b, d) L2-normalised voice embeddings of (b, crops, mels, frames): the mean over crops."""
    b, c = mels.shape[:2]
    z = method.embed("voice", to_device(mels, _device(method)).flatten(0, 1))
    return F.normalize(z.view(b, c, -1).mean(1), dim=1).cpu()


@torch.no_grad()
def embed_faces(method, imgs: torch.Tensor) -> torch.Tensor:
    """(b, d) L2-normalised face embeddings of (b, 3, S, S): a face plus its mirror image."""
    imgs = to_device(imgs, _device(method))
    return F.normalize(method.embed("face", imgs) + method.embed("face", imgs.flip(-1)), dim=1).cpu()


@torch.no_grad()
def embed_dataset(method, ds: VoiceFaceDataset, n_voice_crops: int = 5, batch: int = 32, progress: bool = True):
    """(voice (N, d), face (N, d)) L2-normalised, test-time averaged embeddings of every clip."""
    method.eval()
    voices, faces = [], []
    for start in tqdm(range(0, len(ds), batch), desc="embedding clips", disable=not progress):
        idx = range(start, min(start + batch, len(ds)))
        voices.append(embed_voices(method, torch.stack([ds.voice_crops(i, n_voice_crops) for i in idx])))
        faces.append(embed_faces(method, torch.stack([ds.face(i) for i in idx])))
    return torch.cat(voices).numpy(), torch.cat(faces).numpy()


def eval_dataset(root: Path, task_cfg, workers: int, progress: bool, splits=SPLITS) -> VoiceFaceDataset:
    return VoiceFaceDataset(root, splits, face_size=task_cfg.face_size, crop_seconds=task_cfg.crop_seconds,
                            train=False, mel=MelConfig(n_mels=task_cfg.n_mels), workers=workers, progress=progress,
                            on_bad=task_cfg.on_bad)


class ValidationAUC:
    """Model selection: verification ROC AUC over every (voice, face) pair of the validation
    identities (same identity = positive). Cheap (one embedding pass over a few dozen clips, no
    list files) and computed on identities that are neither trained on nor tested."""

    metric = "val_verification_auc"

    def __init__(self, ds: VoiceFaceDataset, n_voice_crops: int = 3):
        self.ds, self.n_voice_crops = ds, n_voice_crops
        ids = np.array([c.identity for c in ds.clips])
        self.same = ids[:, None] == ids[None, :]

    @classmethod
    def for_data(cls, root, task_cfg, workers: int = 2) -> "ValidationAUC | None":
        try:
            ds = eval_dataset(Path(root), task_cfg, workers, progress=False, splits=("val",))
        except ValueError:  # no validation clips (e.g. a VoxCeleb2 root): selection is off
            return None
        return cls(ds) if len(ds.identities) >= 2 else None

    def __call__(self, method) -> float:
        from avlab.eval.metrics import verification

        voice, face = embed_dataset(method, self.ds, self.n_voice_crops, progress=False)
        return verification((voice @ face.T).ravel(), self.same.ravel())["auc"]


def evaluate(run: Path, cfg, method, root: Path, progress: bool = True, n_voice_crops: int = 5,
             n_boot: int = 200) -> dict:
    """Embed every clip, score every list once, and write ``eval.json``: the figures, a 95 %
    bootstrap interval over test identities for each (``ci``), chance, and on a synthetic set
    the oracle with the share of the gap closed (on the split where the oracle is a ceiling)."""
    lists_dir = root / "lists"
    if not lists_dir.is_dir():
        raise FileNotFoundError(f"{lists_dir} not found: evaluation needs the dataset's list files")
    ds = eval_dataset(root, cfg.task_config(), cfg.n_workers, progress)
    voice, face = embed_dataset(method, ds, n_voice_crops, progress=progress)
    paths = [c.path for c in ds.clips]
    np.savez_compressed(run / "embeddings.npz", paths=np.array(paths), identity=np.array([c.identity for c in ds.clips]),
                        split=np.array([c.split for c in ds.clips]), voice=voice, face=face)
    voice_emb, face_emb = dict(zip(paths, voice)), dict(zip(paths, face))
    parts = list(scored_parts(lists_dir, voice_emb, face_emb))
    metrics = point_estimates(parts)
    identity = {c.path: c.identity for c in ds.clips}
    result = {"run": str(run), "method": cfg.method, "task": cfg.task, "data": str(root),
              "n_voice_crops": n_voice_crops, "missing_list_paths": missing_paths(lists_dir, voice_emb, face_emb),
              "bad_clips": len(ds.bad), "metrics": metrics,
              "ci": bootstrap_parts(parts, identity, n_boot=n_boot, seed=cfg.seed),
              "chance": chance_metrics(lists_dir, voice_emb, face_emb, seed=cfg.seed)}
    if (root / "oracle.json").exists():
        result["oracle"] = json.loads((root / "oracle.json").read_text())
        # The oracle is a ceiling only for identities no model has seen: a model can memorise seen
        # identities' private traits, so the share of the gap is reported for unseen-unheard only.
        ceiling = "unseen_unheard"
        result["gap_closed"] = {ceiling: gap_closed(metrics.get(ceiling, {}), result["chance"].get(ceiling, {}),
                                                    result["oracle"].get(ceiling, {}))}
    (run / "eval.json").write_text(json.dumps(result, indent=1))
    return result
