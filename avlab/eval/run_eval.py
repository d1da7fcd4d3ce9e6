"""Evaluate a trained voice-face run on a dataset's lists: ``RUN/eval.json`` and ``RUN/embeddings.npz``.

Test-time averaging as in CMPC's evaluation: a voice is the mean of ``n_voice_crops`` evenly
spaced windows' embeddings, a face the mean of its frame's and its mirror image's. Chance is
measured, not assumed: random embeddings go through the same lists and code. With a synthetic
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
from avlab.eval.voiceface import evaluate_lists, list_paths

SPLITS = ("train", "val", "seen_heard", "unseen_unheard")


@torch.no_grad()
def embed_voices(method, mels: torch.Tensor) -> torch.Tensor:
    """(b, d) L2-normalised voice embeddings of (b, crops, mels, frames): the mean over crops."""
    b, c = mels.shape[:2]
    return F.normalize(method.embed_voice(mels.flatten(0, 1)).view(b, c, -1).mean(1), dim=1)


@torch.no_grad()
def embed_faces(method, imgs: torch.Tensor) -> torch.Tensor:
    """(b, d) L2-normalised face embeddings of (b, 3, S, S): a face plus its mirror image."""
    return F.normalize(method.embed_face(imgs) + method.embed_face(imgs.flip(-1)), dim=1)


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


def chance_metrics(lists_dir: Path, dim: int = 64, draws: int = 5, seed: int = 0) -> dict:
    """The protocol metrics of random embeddings, averaged over ``draws`` draws."""
    voices, faces = list_paths(lists_dir)
    rng = np.random.default_rng(seed)
    results = []
    for _ in range(draws):
        results.append(evaluate_lists(lists_dir, {p: rng.normal(size=dim) for p in voices},
                                      {p: rng.normal(size=dim) for p in faces}))
    return _mean_tree(results)


def _mean_tree(trees: list):
    if isinstance(trees[0], dict):
        return {k: _mean_tree([t[k] for t in trees]) for k in trees[0]}
    return float(np.mean(trees))


def flatten(tree: dict, prefix: str = "") -> dict[str, float]:
    """{"unseen_unheard/verification/U/auc": 0.8, …}"""
    out = {}
    for k, v in tree.items():
        key = f"{prefix}/{k}" if prefix else str(k)
        out.update(flatten(v, key) if isinstance(v, dict) else {key: v})
    return out


def gap_closed(model: dict, chance: dict, oracle: dict) -> dict[str, float]:
    """(model − chance) / (oracle − chance) per metric (EER excluded: lower is better, same formula holds)."""
    m, c, o = flatten(model), flatten(chance), flatten(oracle)
    return {k: (m[k] - c[k]) / (o[k] - c[k]) for k in m if k in c and k in o and abs(o[k] - c[k]) > 1e-9}


def evaluate_run(run: str | Path, data: str | Path | None = None, n_voice_crops: int = 5, progress: bool = True) -> dict:
    from avlab.train import load_run

    run = Path(run)
    cfg, method = load_run(run)
    root = Path(data or cfg.data)
    lists_dir = root / "lists"
    if not lists_dir.is_dir():
        raise FileNotFoundError(f"{lists_dir} not found: evaluation needs the dataset's list files")
    ds = VoiceFaceDataset(root, SPLITS, face_size=cfg.face_size, crop_seconds=cfg.crop_seconds, train=False,
                          mel=MelConfig(n_mels=cfg.n_mels), workers=cfg.workers, progress=progress)
    voice, face = embed_dataset(method, ds, n_voice_crops, progress=progress)
    paths = [c.path for c in ds.clips]
    np.savez_compressed(run / "embeddings.npz", paths=np.array(paths), identity=np.array([c.identity for c in ds.clips]),
                        split=np.array([c.split for c in ds.clips]), voice=voice, face=face)
    metrics = evaluate_lists(lists_dir, dict(zip(paths, voice)), dict(zip(paths, face)))
    result = {"run": str(run), "method": cfg.method, "data": str(root), "n_voice_crops": n_voice_crops,
              "metrics": metrics, "chance": chance_metrics(lists_dir, dim=voice.shape[1])}
    if (root / "oracle.json").exists():
        result["oracle"] = json.loads((root / "oracle.json").read_text())
        result["gap_closed"] = gap_closed(metrics, result["chance"], result["oracle"])
    (run / "eval.json").write_text(json.dumps(result, indent=1))
    return result
