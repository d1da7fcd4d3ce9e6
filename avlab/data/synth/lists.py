"""Evaluation lists for talking-faces, in the shapes of the public voice-face lists.

* ``veriflist_test_{random,G}_{seenheard,unseenunheard}.txt`` — Learnable-PINs verification lists:
  ``id,voice-speaker-id,face-speaker-id,label,voice-path,face-path``;
* ``matching_{v2f,f2v}_{U,G}_{split}.csv`` — CMPC 1:2 lists, space separated:
  ``probe positive negative``;
* ``matching_{v2f,f2v}_N10_{split}.csv`` — the same with nine negatives (1:N for N = 2…10 uses
  the first N−1);
* ``retrieval_{wav,jpg}_{split}.csv`` — the gallery of each modality: ``path,identity``.

Paths are relative to the dataset root. A face path that is an ``.mp4`` means "a frame of this
clip"; the real lists' ``.jpg`` / ``.wav`` paths are read as they are.
"""
from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

SPLITS = {"seen_heard": "seenheard", "unseen_unheard": "unseenunheard"}


def _pools(rows: list[dict], split: str):
    clips = [r for r in rows if r["clip_split"] == split]
    by_id: dict[str, list[str]] = defaultdict(list)
    gender: dict[str, str] = {}
    for r in clips:
        by_id[r["identity"]].append(r["path"])
        gender[r["identity"]] = r["gender"]
    return clips, dict(sorted(by_id.items())), gender


def _other_clip(rng, by_id, ident, not_path):
    options = [p for p in by_id[ident] if p != not_path] or by_id[ident]
    return options[rng.integers(len(options))]


def _negative(rng, by_id, gender, ident, same_gender: bool):
    ids = [i for i in by_id if i != ident and (not same_gender or gender[i] == gender[ident])]
    if not ids:
        return None
    other = ids[rng.integers(len(ids))]
    return other, by_id[other][rng.integers(len(by_id[other]))]


def write_all(root: Path, rows: list[dict], identities, cfg) -> None:
    out = Path(root) / "lists"
    out.mkdir(exist_ok=True)
    for s_index, (split, tag) in enumerate(SPLITS.items()):
        rng = np.random.default_rng([cfg.seed, 5, s_index])
        clips, by_id, gender = _pools(rows, split)
        if len(by_id) < 2:
            continue
        probes = [c for c in clips]
        if len(probes) > cfg.list_pairs // 2:
            probes = [probes[i] for i in sorted(rng.choice(len(probes), cfg.list_pairs // 2, replace=False))]
        verif = {"random": [], "G": []}
        match = {(d, k): [] for d in ("v2f", "f2v") for k in ("U", "G", "N10")}
        for probe in probes:
            ident, path = probe["identity"], probe["path"]
            pos = _other_clip(rng, by_id, ident, path)
            for kind, same_g in (("random", False), ("G", True)):
                neg = _negative(rng, by_id, gender, ident, same_g)
                if neg is None:
                    continue
                n = len(verif[kind])
                verif[kind].append([n, ident, ident, 1, path, pos])
                verif[kind].append([n + 1, ident, neg[0], 0, path, neg[1]])
                key = "U" if kind == "random" else "G"
                match[("v2f", key)].append([path, pos, neg[1]])
                match[("f2v", key)].append([path, pos, _negative(rng, by_id, gender, ident, same_g)[1]])
            others = [i for i in by_id if i != ident]
            picks = rng.choice(len(others), min(9, len(others)), replace=False)
            for d in ("v2f", "f2v"):
                negs = [by_id[others[k]][rng.integers(len(by_id[others[k]]))] for k in picks]
                match[(d, "N10")].append([path, pos, *negs])
        for kind, lines in verif.items():
            with open(out / f"veriflist_test_{kind}_{tag}.txt", "w", newline="") as f:
                csv.writer(f).writerows(lines)
        for (d, k), lines in match.items():
            (out / f"matching_{d}_{k}_{tag}.csv").write_text("".join(" ".join(l) + "\n" for l in lines))
        for modality in ("wav", "jpg"):
            with open(out / f"retrieval_{modality}_{tag}.csv", "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["path", "identity"])
                w.writerows([c["path"], c["identity"]] for c in clips)
