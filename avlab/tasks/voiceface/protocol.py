"""The voice-face protocol run on a trained method: ``RUN/eval.json`` and ``RUN/embeddings.npz``.

Test-time averaging as in CMPC's evaluation: a voice is the mean of ``n_voice_crops`` evenly
spaced windows' embeddings, a face the mean of its frame's and its mirror image's. Chance is the
analytic value of each metric (and an identity-permutation null for retrieval); with a synthetic
set, the oracle's figures and the share of the chance-to-oracle gap closed are reported beside.
On a VoxCeleb1 root the lists' own paths (voices relative to ``wav/``, faces as VGGFace jpgs) are
resolved and the named jpgs embedded, and ``veri_test.txt`` adds a voice-voice speaker-verification
check (``speaker_verification``).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from avlab.data import media, voxceleb1
from avlab.data.features import MelConfig
from avlab.data.voxceleb import VoiceFaceDataset, frame_to_tensor
from avlab.device import to_device
from avlab.eval.bootstrap import bootstrap_parts
from avlab.eval.chance import chance_metrics
from avlab.eval.metrics import verification
from avlab.eval.tree import gap_closed
from avlab.eval.voiceface import list_paths, missing_paths, point_estimates, scored_parts

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
        voice, face = embed_dataset(method, self.ds, self.n_voice_crops, progress=False)
        return verification((voice @ face.T).ravel(), self.same.ravel())["auc"]


@torch.no_grad()
def add_voxceleb1_list_paths(method, root: Path, lists_dir: Path, face_size: int, voice_emb: dict, face_emb: dict,
                             identity: dict, batch: int = 32, progress: bool = True) -> None:
    """Key embeddings by the paths VoxCeleb1's lists use, in place: a voice path (``<id>/<video>/<utt>.wav``
    and the other spellings :meth:`~avlab.data.voxceleb1.Layout.voice_clip` reads) shares its clip's
    embedding; a face path names one VGGFace jpg, which is embedded as a face (with its mirror image,
    as a clip's frame is). Paths that name nothing readable stay missing: their rows are dropped and
    counted in ``missing_list_paths``."""
    layout = voxceleb1.layout(root)
    if layout is None:
        return
    voices, faces = list_paths(lists_dir)
    for path in voices - voice_emb.keys():
        clip = layout.voice_clip(path)
        if clip in voice_emb:
            voice_emb[path], identity[path] = voice_emb[clip], identity[clip]
    named = [(path, layout.face_file(path)) for path in sorted(faces - face_emb.keys())]
    named = [(path, hit) for path, hit in named if hit is not None]
    for start in tqdm(range(0, len(named), batch), desc="embedding list faces", disable=not progress or not named):
        imgs, keys = [], []
        for path, (jpg, person) in named[start:start + batch]:
            try:
                imgs.append(frame_to_tensor(voxceleb1.read_face(jpg, face_size)))
                keys.append((path, person))
            except media.MediaError:  # an unreadable jpg is a missing list path
                continue
        if imgs:
            for (path, person), z in zip(keys, embed_faces(method, torch.stack(imgs)).numpy()):
                face_emb[path], identity[path] = z, person


def speaker_verification(root: Path, voice_emb: dict) -> dict | None:
    """VoxCeleb1's official voice-voice trials (``veri_test.txt``) scored with the voice embeddings'
    cosine: whether they carry speaker identity, apart from faces. {"list", "n_trials", "n_scored"
    (trials with both voices embedded), "auc", "eer"}; None without a VoxCeleb1 root and its list."""
    layout, path = voxceleb1.layout(root), root / voxceleb1.VERI_TEST
    if layout is None or not path.is_file():
        return None
    trials = voxceleb1.read_veri_test(path)
    pairs = [(t.label, layout.voice_clip(t.enrol), layout.voice_clip(t.test)) for t in trials]
    pairs = [(label, a, b) for label, a, b in pairs if a in voice_emb and b in voice_emb]
    result = {"list": path.name, "n_trials": len(trials), "n_scored": len(pairs)}
    labels = [label for label, _, _ in pairs]
    if len(set(labels)) == 2:
        result.update(verification([float(np.dot(voice_emb[a], voice_emb[b])) for _, a, b in pairs], labels))
    return result


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
    identity = {c.path: c.identity for c in ds.clips}
    add_voxceleb1_list_paths(method, root, lists_dir, cfg.task_config().face_size, voice_emb, face_emb, identity,
                             progress=progress)
    parts = list(scored_parts(lists_dir, voice_emb, face_emb))
    metrics = point_estimates(parts)
    result = {"run": str(run), "method": cfg.method, "task": cfg.task, "data": str(root),
              "n_voice_crops": n_voice_crops, "missing_list_paths": missing_paths(lists_dir, voice_emb, face_emb),
              "bad_clips": len(ds.bad), "metrics": metrics,
              "ci": bootstrap_parts(parts, identity, n_boot=n_boot, seed=cfg.seed),
              "chance": chance_metrics(lists_dir, voice_emb, face_emb, seed=cfg.seed)}
    speakers = speaker_verification(root, voice_emb)
    if speakers is not None:
        result["speaker_verification"] = speakers
    if (root / "oracle.json").exists():
        from avlab.tasks.voiceface.oracle import load_oracle

        result["oracle"] = load_oracle(root)  # re-scored first if written by an older oracle
        # The oracle is a ceiling only for identities no model has seen: a model can memorise seen
        # identities' private traits, so the share of the gap is reported for unseen-unheard only.
        ceiling = "unseen_unheard"
        result["gap_closed"] = {ceiling: gap_closed(metrics.get(ceiling, {}), result["chance"].get(ceiling, {}),
                                                    result["oracle"].get(ceiling, {}))}
    (run / "eval.json").write_text(json.dumps(result, indent=1))
    return result
