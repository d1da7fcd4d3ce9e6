"""The voice-face protocol (DESIGN §3) over list files in the public shapes.

:func:`evaluate_lists` reads the lists in a folder and scores every row with
``score(voice_vectors, face_vectors)`` — a function over the last axis that broadcasts, such as
:func:`cosine`. Embeddings come as dicts keyed by the list paths, so the same code scores a learned
model, the synthetic oracle, or the real VoxCeleb lists once a user has embedded them.

Scoring and measuring are split: :func:`scored_parts` scores each list once into a :class:`Part`
whose ``metric(rows)`` gives the figure for any multiset of its rows. Evaluation takes all rows;
the bootstrap (:mod:`avlab.eval.bootstrap`) resamples rows without scoring again. Memory is bounded
by blocks of rows (:mod:`avlab.eval.similarity`), never n_query × n_gallery × d.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, NamedTuple

import numpy as np

from avlab.eval.metrics import matching_accuracy, matching_curve, mean_ap, query_aps, verification
from avlab.eval.similarity import Score, cosine, rows_per_block, score_blocks

SPLIT_TAGS = {"seen_heard": "seenheard", "unseen_unheard": "unseenunheard"}


class ListFormatError(ValueError):
    """A list file does not have the expected columns; the message names the file and line."""


def _verification_records(path: Path) -> Iterator[list[str]]:
    """The stripped 6-field records of a Learnable-PINs verification list (header skipped)."""
    with open(path, newline="") as f:
        for n, rec in enumerate(csv.reader(f), 1):
            if not rec or rec[0].strip().lower() == "id":
                continue
            if len(rec) != 6:
                raise ListFormatError(f"{path}:{n}: expected 6 comma-separated fields "
                                      f"(id,voice-speaker-id,face-speaker-id,label,voice-path,face-path), got {len(rec)}")
            yield [field.strip() for field in rec]


def read_verification(path: Path) -> list[tuple[str, str, int]]:
    """Rows ``(voice_path, face_path, label)`` of a Learnable-PINs verification list."""
    return [(rec[4], rec[5], int(rec[3])) for rec in _verification_records(path)]


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
    """``(path, identity)`` rows of a ``path,identity`` list (a single-column list takes the identity
    from the path), or of CMPC's tab-separated ``identity<TAB>path`` lists (``wav_20k.csv``,
    ``jpg_20k.csv``, under a ``VoxCeleb1 ID`` header)."""
    with open(path, newline="") as f:
        cmpc = "\t" in f.readline()
        f.seek(0)
        if cmpc:
            return [(rec[1].strip(), rec[0].strip()) for rec in csv.reader(f, delimiter="\t")
                    if len(rec) > 1 and rec[0] != "VoxCeleb1 ID"]
        rows = []
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


def list_identities(lists_dir: str | Path) -> dict[str, str]:
    """Path → identity for every path whose identity a list states (verification and retrieval lists)."""
    lists_dir, ids = Path(lists_dir), {}
    for p in sorted(lists_dir.glob("veriflist_test_*.txt")):
        for rec in _verification_records(p):
            ids[rec[4]], ids[rec[5]] = rec[1], rec[2]
    for p in sorted(lists_dir.glob("retrieval_*.csv")):
        ids.update(read_retrieval(p))
    return ids


def _lookup(emb: dict, paths, kind: str) -> np.ndarray:
    try:
        return np.stack([np.asarray(emb[p]) for p in paths])
    except KeyError as exc:
        raise KeyError(f"no {kind} embedding for list path {exc.args[0]!r}") from None


class ListFile(NamedTuple):
    """One protocol list present in a folder, and where its figures go in the results tree."""
    split: str
    keys: tuple[str, ...]
    kind: str  # "verification" | "matching" | "retrieval"
    paths: tuple[Path, ...]


def list_files(lists_dir: str | Path) -> Iterator[ListFile]:
    """Every protocol list in ``lists_dir``, in report order — one walk shared by scoring and chance."""
    lists_dir = Path(lists_dir)
    for split, tag in SPLIT_TAGS.items():
        for kind, key in (("random", "U"), ("G", "G")):
            p = lists_dir / f"veriflist_test_{kind}_{tag}.txt"
            if p.exists():
                yield ListFile(split, ("verification", key), "verification", (p,))
        for direction in ("v2f", "f2v"):
            for key in ("U", "G", "N10"):
                p = lists_dir / f"matching_{direction}_{key}_{tag}.csv"
                keys = ("matching_1toN", direction) if key == "N10" else ("matching_1to2", direction, key)
                if p.exists():
                    yield ListFile(split, keys, "matching", (p,))
        wav, jpg = lists_dir / f"retrieval_wav_{tag}.csv", lists_dir / f"retrieval_jpg_{tag}.csv"
        if wav.exists() and jpg.exists():
            yield ListFile(split, ("retrieval_map",), "retrieval", (wav, jpg))


class Part(NamedTuple):
    """One list scored row by row.

    ``metric(rows)`` is the protocol figure (a float or a dict of floats) of the rows indexed by
    ``rows`` — ``slice(None)`` for the list itself, an index array with repeats for a bootstrap
    resample. ``probes`` names each row's probe (voice, face or query path): whose identity a
    bootstrap over identities draws.
    """
    split: str
    keys: tuple[str, ...]
    probes: list[str]
    metric: Callable[[Any], Any]


def _candidate_scores(rows: list, probe_emb: dict, cand_emb: dict, voice_probe: bool, score: Score) -> np.ndarray:
    """(n, N) scores of each row's probe against its N candidates, in blocks of rows.

    Pairwise rows cost O(n·N·d) anyway; blocks keep even the stacked embeddings at one block's size.
    """
    n_cand = len(rows[0]) - 1
    probe_kind, cand_kind = ("voice", "face") if voice_probe else ("face", "voice")
    step = rows_per_block(n_cand * _lookup(probe_emb, rows[0][:1], probe_kind).size)

    def block_scores(block):
        probes = _lookup(probe_emb, [r[0] for r in block], probe_kind)[:, None]
        cands = _lookup(cand_emb, [c for r in block for c in r[1:]], cand_kind)
        cands = cands.reshape(len(block), n_cand, *cands.shape[1:])
        return score(probes, cands) if voice_probe else score(cands, probes)

    return np.concatenate([block_scores(rows[i:i + step]) for i in range(0, len(rows), step)])


def _present(rows: list, embs: list[dict]) -> list:
    """The rows all of whose paths have an embedding: a clip left out as unreadable (``--on-bad
    skip``) drops the list rows that need it instead of failing the whole evaluation (the count is
    reported by :func:`missing_paths`)."""
    return [r for r in rows if all(p in e for p, e in zip(r, embs))]


def missing_paths(lists_dir: str | Path, voice_emb: dict, face_emb: dict) -> dict[str, int]:
    """How many voice / face paths the lists name that have no embedding (their rows are dropped)."""
    voices, faces = list_paths(lists_dir)
    return {"voice": len(voices - voice_emb.keys()), "face": len(faces - face_emb.keys())}


def _verification_parts(lf: ListFile, voice_emb: dict, face_emb: dict, score: Score) -> Iterator[Part]:
    rows = _present(read_verification(lf.paths[0]), [voice_emb, face_emb])
    s = _candidate_scores([r[:2] for r in rows], voice_emb, face_emb, True, score)[:, 0]
    labels = np.array([r[2] for r in rows])
    yield Part(lf.split, lf.keys, [r[0] for r in rows], lambda idx: verification(s[idx], labels[idx]))


def _matching_parts(lf: ListFile, voice_emb: dict, face_emb: dict, score: Score) -> Iterator[Part]:
    v2f = lf.keys[1] == "v2f"
    probe_emb, cand_emb = (voice_emb, face_emb) if v2f else (face_emb, voice_emb)
    rows = [r for r in read_matching(lf.paths[0]) if r[0] in probe_emb and all(c in cand_emb for c in r[1:])]
    s = _candidate_scores(rows, probe_emb, cand_emb, v2f, score)
    if lf.keys[0] == "matching_1toN":
        metric = lambda idx: {str(n): a for n, a in matching_curve(s[idx]).items()}  # noqa: E731
    else:
        metric = lambda idx: matching_accuracy(s[idx])  # noqa: E731
    yield Part(lf.split, lf.keys, [r[0] for r in rows], metric)


class Retrieval(NamedTuple):
    """One direction of a retrieval list: each query ranks the whole gallery of the other modality.

    ``swap`` tells :func:`~avlab.eval.similarity.score_blocks` that the query is the face, so a
    score that takes the voice first is still called the right way round.
    """
    direction: str
    queries: np.ndarray
    gallery: np.ndarray
    query_ids: np.ndarray
    gallery_ids: np.ndarray
    query_paths: list[str]
    swap: bool

    def blocks(self, score: Score = cosine):
        return score_blocks(self.queries, self.gallery, score, self.swap)


def retrieval_directions(lf: ListFile, voice_emb: dict, face_emb: dict) -> tuple[Retrieval, Retrieval]:
    """The v2f and f2v :class:`Retrieval` of a retrieval list pair (wav, jpg)."""
    v_rows = _present(read_retrieval(lf.paths[0]), [voice_emb])
    f_rows = _present(read_retrieval(lf.paths[1]), [face_emb])
    v_paths, f_paths = [r[0] for r in v_rows], [r[0] for r in f_rows]
    V, F = _lookup(voice_emb, v_paths, "voice"), _lookup(face_emb, f_paths, "face")
    v_id, f_id = np.array([r[1] for r in v_rows]), np.array([r[1] for r in f_rows])
    return (Retrieval("v2f", V, F, v_id, f_id, v_paths, False),
            Retrieval("f2v", F, V, f_id, v_id, f_paths, True))


def _retrieval_parts(lf: ListFile, voice_emb: dict, face_emb: dict, score: Score) -> Iterator[Part]:
    for r in retrieval_directions(lf, voice_emb, face_emb):
        aps = query_aps(r.query_ids, r.gallery_ids, r.blocks(score))
        yield Part(lf.split, (*lf.keys, r.direction), r.query_paths, lambda idx, aps=aps: mean_ap(aps[idx]))


_PARTS = {"verification": _verification_parts, "matching": _matching_parts, "retrieval": _retrieval_parts}


def scored_parts(lists_dir: str | Path, voice_emb: dict, face_emb: dict, score: Score = cosine) -> Iterator[Part]:
    """Every list in ``lists_dir`` scored once (see :class:`Part`), in report order."""
    for lf in list_files(lists_dir):
        yield from _PARTS[lf.kind](lf, voice_emb, face_emb, score)


def nest(tree: dict, keys, value) -> dict:
    """Set ``tree[k0][k1]…[kn] = value``, creating the dicts on the way; returns ``tree``."""
    node = tree
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value
    return tree


def point_estimates(parts: Iterable[Part]) -> dict:
    """The figures of scored parts on all their rows, as a tree split → metric → … .

    With :func:`~avlab.eval.bootstrap.bootstrap_parts` on the same parts, estimates and intervals
    come from one scoring pass.
    """
    results: dict = {}
    for part in parts:
        nest(results, (part.split, *part.keys), part.metric(slice(None)))
    return results


def evaluate_lists(lists_dir: str | Path, voice_emb: dict, face_emb: dict, score: Score = cosine) -> dict:
    """All protocol metrics for every split whose lists exist in ``lists_dir``."""
    return point_estimates(scored_parts(lists_dir, voice_emb, face_emb, score))
