"""The voice-face protocol (DESIGN §3) over list files in the public shapes.

:func:`evaluate_lists` reads the lists in a folder and scores every row with
``score(voice_vectors, face_vectors)`` — a function over the last axis that broadcasts, such as
:func:`cosine`. Embeddings come as dicts keyed by the list paths, so the same code scores a learned
model, the synthetic oracle, or the real VoxCeleb lists once a user has embedded them.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable

import numpy as np

from avlab.eval.metrics import matching_accuracy, matching_curve, retrieval_map, verification

SPLIT_TAGS = {"seen_heard": "seenheard", "unseen_unheard": "unseenunheard"}
Score = Callable[[np.ndarray, np.ndarray], np.ndarray]


class ListFormatError(ValueError):
    """A list file does not have the expected columns; the message names the file and line."""


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity over the last axis (broadcasting).

    >>> float(cosine(np.array([1.0, 0.0]), np.array([1.0, 1.0])).round(4))
    0.7071
    """
    a = a / (np.linalg.norm(a, axis=-1, keepdims=True) + 1e-12)
    b = b / (np.linalg.norm(b, axis=-1, keepdims=True) + 1e-12)
    return (a * b).sum(-1)


def read_verification(path: Path) -> list[tuple[str, str, int]]:
    """Rows ``(voice_path, face_path, label)`` of a Learnable-PINs verification list."""
    rows = []
    with open(path, newline="") as f:
        for n, rec in enumerate(csv.reader(f), 1):
            if not rec or rec[0].strip().lower() == "id":
                continue
            if len(rec) != 6:
                raise ListFormatError(f"{path}:{n}: expected 6 comma-separated fields "
                                      f"(id,voice-speaker-id,face-speaker-id,label,voice-path,face-path), got {len(rec)}")
            rows.append((rec[4].strip(), rec[5].strip(), int(rec[3])))
    return rows


def read_matching(path: Path) -> list[list[str]]:
    """Rows ``[probe, positive, negative, …]`` of a space-separated matching list."""
    rows = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 3:
            raise ListFormatError(f"{path}:{n}: expected 'probe positive negative…', got {line!r}")
        rows.append(parts)
    if rows and len({len(r) for r in rows}) != 1:
        raise ListFormatError(f"{path}: rows have different numbers of candidates")
    return rows


def read_retrieval(path: Path) -> list[tuple[str, str]]:
    """``(path, identity)`` rows; a single-column list takes the identity from the path."""
    rows = []
    with open(path, newline="") as f:
        for rec in csv.reader(f):
            if not rec or rec[0] == "path":
                continue
            rows.append((rec[0], rec[1] if len(rec) > 1 else Path(rec[0]).parts[-3]))
    return rows


def list_paths(lists_dir: str | Path) -> tuple[set[str], set[str]]:
    """Every voice path and every face path that the lists in ``lists_dir`` mention."""
    lists_dir = Path(lists_dir)
    voices, faces = set(), set()
    for p in lists_dir.glob("veriflist_test_*.txt"):
        for v, f, _ in read_verification(p):
            voices.add(v)
            faces.add(f)
    for p in lists_dir.glob("matching_*.csv"):
        for row in read_matching(p):
            (voices if "_v2f_" in p.name else faces).add(row[0])
            (faces if "_v2f_" in p.name else voices).update(row[1:])
    for p in lists_dir.glob("retrieval_wav_*.csv"):
        voices.update(r[0] for r in read_retrieval(p))
    for p in lists_dir.glob("retrieval_jpg_*.csv"):
        faces.update(r[0] for r in read_retrieval(p))
    return voices, faces


def _lookup(emb: dict, paths, kind: str) -> np.ndarray:
    try:
        return np.stack([np.asarray(emb[p]) for p in paths])
    except KeyError as exc:
        raise KeyError(f"no {kind} embedding for list path {exc.args[0]!r}") from None


def evaluate_lists(lists_dir: str | Path, voice_emb: dict, face_emb: dict, score: Score = cosine) -> dict:
    """All protocol metrics for every split whose lists exist in ``lists_dir``."""
    lists_dir = Path(lists_dir)
    results: dict = {}
    for split, tag in SPLIT_TAGS.items():
        res: dict = {}
        for kind, key in (("random", "U"), ("G", "G")):
            p = lists_dir / f"veriflist_test_{kind}_{tag}.txt"
            if p.exists():
                rows = read_verification(p)
                s = score(_lookup(voice_emb, [r[0] for r in rows], "voice"), _lookup(face_emb, [r[1] for r in rows], "face"))
                res.setdefault("verification", {})[key] = verification(s, [r[2] for r in rows])
        for direction in ("v2f", "f2v"):
            probe_emb, cand_emb = (voice_emb, face_emb) if direction == "v2f" else (face_emb, voice_emb)
            for key in ("U", "G", "N10"):
                p = lists_dir / f"matching_{direction}_{key}_{tag}.csv"
                if not p.exists():
                    continue
                rows = read_matching(p)
                probes = _lookup(probe_emb, [r[0] for r in rows], "probe")
                cands = np.stack([_lookup(cand_emb, r[1:], "candidate") for r in rows])  # (n, N, d)
                s = score(probes[:, None, :], cands) if direction == "v2f" else score(cands, probes[:, None, :])
                if key == "N10":
                    res.setdefault("matching_1toN", {})[direction] = {str(n): a for n, a in matching_curve(s).items()}
                else:
                    res.setdefault("matching_1to2", {}).setdefault(direction, {})[key] = matching_accuracy(s)
        wav, jpg = lists_dir / f"retrieval_wav_{tag}.csv", lists_dir / f"retrieval_jpg_{tag}.csv"
        if wav.exists() and jpg.exists():
            v_rows, f_rows = read_retrieval(wav), read_retrieval(jpg)
            V, F = _lookup(voice_emb, [r[0] for r in v_rows], "voice"), _lookup(face_emb, [r[0] for r in f_rows], "face")
            v_id, f_id = [r[1] for r in v_rows], [r[1] for r in f_rows]
            sim = score(V[:, None, :], F[None, :, :])
            res["retrieval_map"] = {"v2f": retrieval_map(v_id, f_id, sim), "f2v": retrieval_map(f_id, v_id, sim.T)}
        if res:
            results[split] = res
    return results
