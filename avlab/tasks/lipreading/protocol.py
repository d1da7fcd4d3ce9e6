"""The lip-reading protocol on a trained method: ``RUN/eval.json``, ``RUN/lipreading.npz`` and the
frozen variant's back-end, ``RUN/lipreading_backend.safetensors`` (the demo reads words with it).

Word classification (DESIGN §3, LRW top-1 on the test split) from the method's **visual**
encoder, never its audio one:

* (a) ``frozen``: the front-end is frozen; a small temporal back-end (two temporal convs, mean
  over time, linear) is trained on the labelled train split's per-frame features;
* (b) ``finetune``: front-end + back-end trained end to end from (a)'s back-end, the front-end at a
  tenth of the learning rate (LP-FT; ``finetune_epochs``; 0 skips it);
* (c) ``lowshot_1pct`` / ``lowshot_10pct``: (a) with a seeded 1 % / 10 % of the train labels.

Every variant keeps the epoch with the best val top-1 and reports test at that epoch: model
selection on val, never on test. Beside them: **identity leakage** — a linear probe's speaker
accuracy from clip-level frozen visual features (time-averaged frame features; a stratified
half of each speaker's clips trains it, the other half tests it; lower is better) beside its
chance; **modality** — a linear probe telling audio from video clip embeddings, and the method's
own modality classifier if it has one (≈ 0.5: the modality is removed); chance (1 / words), a
95 % bootstrap interval over test clips, and on a synthetic set the oracle ceilings.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from avlab.device import to_device
from avlab.eval.bootstrap import percentile_interval
from avlab.tasks.lipreading.dataset import LipWordsDataset

BACKEND_FILE = "lipreading_backend.safetensors"  # the frozen variant's back-end, for the demo


def _device(method) -> torch.device:
    return next(method.parameters()).device


def eval_dataset(root, task_cfg, split: str, workers: int, progress: bool, train: bool = False) -> LipWordsDataset:
    return LipWordsDataset(root, (split,), roi_size=task_cfg.roi_size, crop_size=task_cfg.crop_size,
                           n_mfcc=task_cfg.n_mfcc, win_ms=task_cfg.win_ms, hop_ms=task_cfg.hop_ms, train=train,
                           augment=task_cfg.augment, workers=workers, progress=progress)


def batches(ds: LipWordsDataset, batch: int = 64):
    for start in range(0, len(ds), batch):
        yield ds.collate([ds[i] for i in range(start, min(start + batch, len(ds)))])


@torch.no_grad()
def frozen_features(method, ds: LipWordsDataset, modality: str = "video", batch: int = 64) -> np.ndarray:
    """(N, T, d) per-frame front-end features of every clip (centre crop, no augmentation)."""
    method.eval()
    enc, dev = method.encoders[modality], _device(method)
    out = [enc.frames(method._input(to_device(b[modality], dev))).float().cpu() for b in batches(ds, batch)]
    return torch.cat(out).numpy()


@torch.no_grad()
def clip_embeddings(method, ds: LipWordsDataset, modality: str, batch: int = 64) -> np.ndarray:
    method.eval()
    dev = _device(method)
    return torch.cat([method.embed(modality, to_device(b[modality], dev)).float().cpu()
                      for b in batches(ds, batch)]).numpy()


class ValidationWordKNN:
    """Model selection during training: leave-one-out 1-NN word accuracy of the val clips' visual
    clip embeddings (cosine). Label-using but on val only and cheap (one pass over a few hundred
    clips, no back-end to train). It is a weak proxy for what the protocol scores: on the standard
    lip-words profile it stays at 0.02-0.05 while the frozen temporal back-end reads 0.3-0.55, and the
    epoch it picks can be far from the best (README, "Measured, standard profile")."""

    metric = "val_word_1nn"

    def __init__(self, ds: LipWordsDataset):
        self.ds = ds

    @classmethod
    def for_data(cls, root, task_cfg, workers: int = 2) -> "ValidationWordKNN | None":
        try:
            ds = eval_dataset(Path(root), task_cfg, "val", workers, progress=False)
        except ValueError:  # no val split (e.g. a partial LRW copy): selection is off
            return None
        return cls(ds) if len(ds) >= 2 else None

    def __call__(self, method) -> float:
        return loo_1nn_accuracy(clip_embeddings(method, self.ds, "video"), self.ds.labels)


def loo_1nn_accuracy(x: np.ndarray, labels: np.ndarray) -> float:
    """Leave-one-out 1-nearest-neighbour accuracy under cosine similarity (each row's nearest
    other row carries its label)."""
    z = F.normalize(torch.as_tensor(x).float(), dim=1)
    nearest = (z @ z.T).fill_diagonal_(-float("inf")).argmax(dim=1).numpy()
    labels = np.asarray(labels)
    return float((labels[nearest] == labels).mean())


class BackEnd(nn.Module):
    """(B, T, d) frame features → word logits: two temporal convs, mean over time, linear."""

    def __init__(self, dim: int, n_classes: int, hidden: int = 128):
        super().__init__()
        self.net = nn.Sequential(nn.Conv1d(dim, hidden, 3, padding=1), nn.BatchNorm1d(hidden), nn.ReLU(),
                                 nn.Conv1d(hidden, hidden, 3, padding=1), nn.BatchNorm1d(hidden), nn.ReLU())
        self.fc = nn.Linear(hidden, n_classes)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(self.net(f.transpose(1, 2)).mean(dim=2))


def topk_hits(logits: torch.Tensor, labels: torch.Tensor, k: int) -> np.ndarray:
    """(N,) bool: the label is among the ``k`` highest logits."""
    k = min(k, logits.shape[1])
    return (logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1).cpu().numpy()


def _scores(logits: torch.Tensor, labels: torch.Tensor) -> dict:
    return {"top1": float(topk_hits(logits, labels, 1).mean()), "top5": float(topk_hits(logits, labels, 5).mean())}


def backend_epochs(n_train: int, epochs: int, batch: int, min_steps: int) -> int:
    """Epochs for ``n_train`` labelled clips: at least ``epochs``, and enough for ``min_steps``
    optimiser steps — with 1 % of the labels an epoch is a single step, and 30 of them leave the
    back-end untrained (low-shot would then measure the optimiser, not the features)."""
    steps_per_epoch = max(1, -(-n_train // batch))
    return max(epochs, -(-min_steps // steps_per_epoch))


def train_backend(train: tuple, val: tuple, test: tuple, n_classes: int, epochs: int = 30, lr: float = 3e-3,
                  batch: int = 64, seed: int = 0, min_steps: int = 300) -> dict:
    """Fit :class:`BackEnd` on frozen features; (val top-1, test scores and logits, the weights as
    ``state``) at the best-val epoch.

    ``train`` / ``val`` / ``test`` are (features (N, T, d), labels (N,)) arrays."""
    torch.manual_seed(seed)
    (xtr, ytr), (xva, yva), (xte, yte) = [(torch.as_tensor(x).float(), torch.as_tensor(y).long())
                                          for x, y in (train, val, test)]
    model = BackEnd(xtr.shape[-1], n_classes)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-2)
    gen = torch.Generator().manual_seed(seed)
    best = {"val_top1": -1.0}
    for epoch in range(backend_epochs(len(xtr), epochs, batch, min_steps)):
        model.train()
        order = torch.randperm(len(xtr), generator=gen)
        for s in range(0, len(order), batch):
            idx = order[s:s + batch]
            if len(idx) < 2 and len(order) >= 2:  # BatchNorm needs two samples
                continue
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            val_top1 = float(topk_hits(model(xva), yva, 1).mean())
            if val_top1 > best["val_top1"]:
                logits = model(xte)
                best = {"val_top1": val_top1, "epoch": epoch, "test": _scores(logits, yte), "logits": logits,
                        "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
    return best


def save_backend(run: Path, state: dict, words: list[str], epoch: int) -> Path:
    """Keep the frozen variant's back-end (``RUN/lipreading_backend.safetensors``, the word list in
    its metadata) so the demo reads words with the classifier the protocol scored, not a new one."""
    from avlab.checkpoint import atomic_save

    path = Path(run) / BACKEND_FILE
    atomic_save(state, path, {"words": json.dumps(words), "epoch": str(epoch)})
    return path


def _subset(n: int, fraction: float, seed: int) -> np.ndarray:
    k = max(2, int(round(fraction * n)))
    return np.sort(np.random.default_rng([seed, 7]).choice(n, min(k, n), replace=False))


def finetune(method, root, task_cfg, n_classes: int, epochs: int, workers: int, progress: bool, seed: int = 0,
             lr: float = 1e-3, batch: int = 32, head_state: dict | None = None, frontend_lr_scale: float = 0.1) -> dict:
    """(b): a copy of the visual front-end and a back-end trained end to end on the augmented train
    split. LP-FT: the back-end starts from the frozen variant's (``head_state``) and the front-end
    learns at ``lr × frontend_lr_scale`` — a fresh head's first gradients would otherwise wreck the
    pre-trained front-end, and fine-tuning would score below freezing it. The start (epoch −1) and
    every epoch are candidates; the best val top-1 is scored on test."""
    torch.manual_seed(seed)
    dev = _device(method)
    frontend = copy.deepcopy(method.encoders["video"].frontend).to(dev)
    head = BackEnd(method.encoders["video"].frame_dim, n_classes).to(dev)
    if head_state is not None:
        head.load_state_dict(head_state)
    opt = torch.optim.AdamW([{"params": frontend.parameters(), "lr": lr * frontend_lr_scale},
                             {"params": head.parameters(), "lr": lr}], weight_decay=1e-2)
    tr = eval_dataset(root, task_cfg, "train", workers, False, train=True)
    tr.seed = seed
    va, te = (eval_dataset(root, task_cfg, s, workers, False) for s in ("val", "test"))

    def logits_of(ds):
        frontend.eval(), head.eval()
        with torch.no_grad():
            return torch.cat([head(frontend(to_device(b["video"], dev))).cpu() for b in batches(ds)])

    def score(epoch: int, best: dict) -> dict:
        val_top1 = float(topk_hits(logits_of(va), torch.as_tensor(va.labels), 1).mean())
        if val_top1 <= best["val_top1"]:
            return best
        return {"val_top1": val_top1, "epoch": epoch, "test": _scores(logits_of(te), torch.as_tensor(te.labels))}

    best = score(-1, {"val_top1": -1.0}) if head_state is not None else {"val_top1": -1.0}
    for epoch in tqdm(range(epochs), desc="fine-tuning", disable=not progress):
        frontend.train(), head.train()
        order = np.random.default_rng([seed, epoch]).permutation(len(tr))
        for s in range(0, len(order) - 1, batch):
            b = to_device(tr.collate([tr[(epoch, int(i))] for i in order[s:s + batch]]), dev)
            loss = F.cross_entropy(head(frontend(b["video"])), b["label"])
            opt.zero_grad()
            loss.backward()
            opt.step()
        best = score(epoch, best)
    return best


def linear_probe_accuracy(x: np.ndarray, y: np.ndarray, seed: int = 0) -> dict:
    """A logistic-regression probe trained on a stratified half of each class, tested on the rest.
    Classes with a single sample are left out. Returns accuracy, chance (1 / classes) and the
    majority share of the test half."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng([seed, 11])
    train_idx, test_idx = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        if len(idx) >= 2:
            half = len(idx) // 2
            train_idx += idx[:half].tolist()
            test_idx += idx[half:].tolist()
    if len(set(y[train_idx].tolist())) < 2:
        return {"acc": float("nan"), "chance": float("nan"), "majority": float("nan"), "n_classes": 0}
    scaler = StandardScaler().fit(x[train_idx])
    clf = LogisticRegression(max_iter=500).fit(scaler.transform(x[train_idx]), y[train_idx])
    acc = float((clf.predict(scaler.transform(x[test_idx])) == y[test_idx]).mean())
    counts = np.unique(y[test_idx], return_counts=True)[1]
    return {"acc": acc, "chance": 1.0 / len(counts), "majority": float(counts.max() / counts.sum()),
            "n_classes": int(len(counts))}


def bootstrap_hits(hits: np.ndarray, n_boot: int, seed: int) -> list[float]:
    """95 % percentile interval of the mean of per-clip hits, resampling test clips."""
    rng = np.random.default_rng([seed, 13])
    reps = [float(hits[rng.integers(len(hits), size=len(hits))].mean()) for _ in range(n_boot)]
    return percentile_interval(reps)


def evaluate(run: Path, cfg, method, root: Path, progress: bool = True, backend_epochs: int = 30,
             lowshot: tuple = (0.01, 0.1), finetune_epochs: int = 0, n_boot: int = 200) -> dict:
    """Run the protocol (module docstring) and write ``eval.json``; returns its content."""
    root = Path(root)
    tcfg = cfg.task_config()
    ds = {s: eval_dataset(root, tcfg, s, cfg.n_workers, progress) for s in ("train", "val", "test")}
    feats = {s: frozen_features(method, d) for s, d in ds.items()}
    labels = {s: d.labels for s, d in ds.items()}
    n_classes = ds["train"].n_classes
    split = lambda s, idx=None: (feats[s], labels[s]) if idx is None else (feats[s][idx], labels[s][idx])  # noqa: E731

    test: dict = {}
    val: dict = {}
    frozen = train_backend(split("train"), split("val"), split("test"), n_classes, backend_epochs, seed=cfg.seed)
    test["frozen"], val["frozen"] = frozen["test"], {"top1": frozen["val_top1"]}
    for frac in lowshot:
        idx = _subset(len(labels["train"]), frac, cfg.seed)
        r = train_backend(split("train", idx), split("val"), split("test"), n_classes, backend_epochs, seed=cfg.seed)
        key = f"lowshot_{frac * 100:g}pct"
        test[key], val[key] = {**r["test"], "n_labels": int(len(idx))}, {"top1": r["val_top1"]}
    if finetune_epochs > 0:
        r = finetune(method, root, tcfg, n_classes, finetune_epochs, cfg.n_workers, progress, cfg.seed,
                     head_state=frozen["state"])
        test["finetune"], val["finetune"] = r["test"], {"top1": r["val_top1"]}

    every = np.concatenate([feats[s].mean(axis=1) for s in ds])  # clip-level frozen visual features
    speakers = np.concatenate([ds[s].speaker_ids for s in ds])
    known = speakers >= 0
    if known.any():
        probe = linear_probe_accuracy(every[known], speakers[known], cfg.seed)
        test["identity_leakage"] = {"speaker_acc": probe["acc"], "chance": probe["chance"],
                                    "majority": probe["majority"], "n_speakers": probe["n_classes"]}
    emb_v, emb_a = clip_embeddings(method, ds["test"], "video"), clip_embeddings(method, ds["test"], "audio")
    modality = np.r_[np.zeros(len(emb_v), int), np.ones(len(emb_a), int)]
    test["modality"] = {"probe_acc": linear_probe_accuracy(np.concatenate([emb_v, emb_a]), modality, cfg.seed)["acc"],
                        "chance": 0.5}
    if hasattr(method, "modality_accuracy") and getattr(method.cfg, "modality_adversary", True):  # a trained one only
        audio_frames = frozen_features(method, ds["test"], "audio")
        test["modality"]["classifier_acc"] = method.modality_accuracy(torch.as_tensor(feats["test"]),
                                                                      torch.as_tensor(audio_frames))

    hits = topk_hits(frozen["logits"], torch.as_tensor(labels["test"]), 1)
    chance = {"top1": 1.0 / n_classes, "top5": min(5, n_classes) / n_classes}
    result = {"run": str(run), "method": cfg.method, "task": cfg.task, "data": str(root),
              "n_clips": {s: len(d) for s, d in ds.items()}, "words": ds["train"].words,
              "metrics": {"test": test, "val": val},
              "ci": {"test": {"frozen": {"top1": bootstrap_hits(hits, n_boot, cfg.seed)}}},
              "chance": {"test": {k: dict(chance) for k in test if k not in ("identity_leakage", "modality")}}}
    result["chance"]["test"]["modality"] = {"probe_acc": 0.5}
    if "identity_leakage" in test:
        result["chance"]["test"]["identity_leakage"] = {"speaker_acc": test["identity_leakage"]["chance"]}
    if (root / "oracle.json").exists():
        ceilings = json.loads((root / "oracle.json").read_text())
        ceiling = ceilings["visual"]
        # The visual Bayes accuracy bounds every word-accuracy variant (all read the video only).
        result["oracle"] = {"test": {k: {m: ceiling[m] for m in ("top1", "top5") if m in v}
                                     for k, v in test.items() if "top1" in v}, "ceilings": ceilings}
        result["gap_closed"] = {"test": {k: (v["top1"] - chance["top1"]) / (ceiling["top1"] - chance["top1"])
                                         for k, v in test.items() if "top1" in v
                                         and abs(ceiling["top1"] - chance["top1"]) > 1e-9}}
    np.savez_compressed(run / "lipreading.npz", paths=np.array(ds["test"].sample_names()), label=labels["test"],
                        speaker=ds["test"].speaker_ids, logits=frozen["logits"].numpy(),
                        visual=feats["test"].mean(axis=1), words=np.array(ds["train"].words))
    save_backend(run, frozen["state"], ds["train"].words, frozen["epoch"])
    (run / "eval.json").write_text(json.dumps(result, indent=1))
    return result
