"""The voice-face protocol at real scale, through the real protocol code; prints JSON.

    python benchmarks/eval_scale.py --n 20000 --dim 512

Synthetic clips (``--n`` of them, ``--per-id`` per identity) with voice and face embeddings drawn
around a per-identity centre, list files in the public shapes written to a temporary folder, then
timed one part at a time: verification (U and G lists, two rows per clip), 1:2 matching (U and G,
both directions, one row per clip), retrieval (every clip's voice ranks all faces and back: an
n × n score matrix, never held whole), the analytic chance with the identity-permutation null,
and the bootstrap intervals. Figures: seconds per part and the process's peak RSS after each
(``ru_maxrss``; the goal is < 2 GB at n = 20000, d = 512).
"""
import argparse
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from avlab.eval.bootstrap import confidence_intervals
from avlab.eval.chance import chance_metrics
from avlab.eval.voiceface import evaluate_lists

TAG = "unseenunheard"


def clips(n: int, per_id: int) -> tuple[list[str], np.ndarray]:
    """Clip paths ``idNNNNN/KKKKK.mp4`` and each clip's identity index (identities in blocks)."""
    ident = np.arange(n) // per_id
    return [f"id{i:05d}/{k:05d}.mp4" for k, i in enumerate(ident)], ident


def embed(ident: np.ndarray, dim: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(voices, faces) float32: a shared identity centre plus independent noise ``noise`` times its size."""
    centre = rng.standard_normal((ident.max() + 1, dim), dtype=np.float32)
    draw = lambda: noise * rng.standard_normal((len(ident), dim), dtype=np.float32)  # noqa: E731
    return centre[ident] + draw(), centre[ident] + draw()


def partners(ident: np.ndarray, per_id: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """For every clip: another clip of its identity, and a clip of another identity."""
    n, n_ids = len(ident), ident.max() + 1
    own = np.arange(n) % per_id
    pos = ident * per_id + (own + rng.integers(1, per_id, n)) % per_id
    other = (ident + rng.integers(1, n_ids, n)) % n_ids
    return np.minimum(pos, n - 1), np.minimum(other * per_id + rng.integers(0, per_id, n), n - 1)


def write_lists(root: Path, paths: list[str], ident: np.ndarray, per_id: int, rng) -> dict[str, Path]:
    """One folder per part, so each part is timed through :func:`evaluate_lists` on its own."""
    folders = {part: root / part for part in ("verification", "matching", "retrieval")}
    for folder in folders.values():
        folder.mkdir(parents=True)
    name = [f"id{i:05d}" for i in range(ident.max() + 1)]
    for kind in ("random", "G"):
        pos, neg = partners(ident, per_id, rng)
        lines = [f"{2 * k},{name[ident[k]]},{name[ident[j]]},{int(j == p)},{paths[k]},{paths[j]}"
                 for k, (p, q) in enumerate(zip(pos, neg)) for j in (p, q)]
        (folders["verification"] / f"veriflist_test_{kind}_{TAG}.txt").write_text("\n".join(lines) + "\n")
    for direction in ("v2f", "f2v"):
        for key in ("U", "G"):
            pos, neg = partners(ident, per_id, rng)
            rows = [f"{paths[k]} {paths[p]} {paths[q]}" for k, (p, q) in enumerate(zip(pos, neg))]
            (folders["matching"] / f"matching_{direction}_{key}_{TAG}.csv").write_text("\n".join(rows) + "\n")
    gallery = "path,identity\n" + "".join(f"{p},{name[i]}\n" for p, i in zip(paths, ident))
    for modality in ("wav", "jpg"):
        (folders["retrieval"] / f"retrieval_{modality}_{TAG}.csv").write_text(gallery)
    return folders


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, {"seconds": round(time.perf_counter() - t0, 2), "peak_rss_mb_after": peak_rss_mb()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000, help="clips: queries and gallery size of each modality")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--per-id", type=int, default=20, help="clips per identity")
    ap.add_argument("--noise", type=float, default=4.0, help="per-clip noise / identity signal (std)")
    ap.add_argument("--boot", type=int, default=200, help="bootstrap replicates (0: skip the part)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    paths, ident = clips(args.n, args.per_id)
    V, F = embed(ident, args.dim, args.noise, rng)
    voice, face = dict(zip(paths, V)), dict(zip(paths, F))  # rows are views: no copy per clip
    parts, metrics = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        folders, parts["write_lists"] = timed(lambda: write_lists(Path(tmp), paths, ident, args.per_id, rng))
        for part, folder in folders.items():
            result, parts[part] = timed(lambda: evaluate_lists(folder, voice, face))
            metrics.update(result[list(result)[0]])
        chance, parts["chance_with_null"] = timed(lambda: chance_metrics(folders["retrieval"], voice, face))
        if args.boot:
            for part in ("verification", "matching", "retrieval"):
                _, parts[f"bootstrap_{part}"] = timed(lambda: confidence_intervals(
                    folders[part], voice, face, identity=lambda p: p.split("/")[0], n_boot=args.boot))
    print(json.dumps({
        "n_queries": args.n, "n_gallery": args.n, "dim": args.dim, "identities": int(ident.max() + 1),
        "noise": args.noise,
        "verification_rows": 2 * args.n, "matching_rows_per_list": args.n, "bootstrap_replicates": args.boot,
        "parts": parts, "peak_rss_mb": peak_rss_mb(), "goal_peak_rss_mb": 2048,
        "metrics": metrics, "chance_retrieval": chance[list(chance)[0]],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores", "numpy": np.__version__,
    }, indent=1))


if __name__ == "__main__":
    main()
