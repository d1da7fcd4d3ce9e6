"""Time to the first UMAP figure in a fresh process (a new kernel), cold and cached; prints JSON.

    python benchmarks/umap_view.py [--sizes 5000 50000]

For each size, a synthetic run folder gets clustered 128-d embeddings (half voices, half faces)
and three fresh Python processes each build the notebook's figure (``umap_layout`` +
``umap_figure``):
- ``cold``: empty numba cache and no cached layout (what a first-ever view costs);
- ``numba_cached``: numba's compiled kernels on disk, layout recomputed (a new run's first view);
- ``layout_cached``: the run's layout already cached (re-opening a view).
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = """
import time, sys
t0 = time.perf_counter()
from avlab.viz.umap_view import umap_layout, umap_figure
pts = umap_layout(sys.argv[1], max_points=int(sys.argv[2]), use_cache=sys.argv[3] == "1")
fig = umap_figure(pts, "identity")
print(time.perf_counter() - t0)
"""


def fake_run(root: Path, n_points: int) -> Path:
    rng = np.random.default_rng(0)
    n = n_points // 2
    ids = rng.integers(0, max(2, n // 20), n)
    centres = rng.normal(size=(ids.max() + 1, 128))
    voice = centres[ids] + rng.normal(size=(n, 128)) * 0.7
    face = centres[ids] + rng.normal(size=(n, 128)) * 0.7
    run = root / f"run{n_points}"
    run.mkdir(parents=True)
    np.savez(run / "embeddings.npz", paths=np.array([f"clip{i}.mp4" for i in range(n)]),
             identity=np.array([f"id{i:05d}" for i in ids]), split=np.array(["train"] * n), voice=voice, face=face)
    (run / "config.json").write_text(json.dumps({"data": str(root / "no-data")}))
    return run


def timed(run: Path, n_points: int, use_cache: bool, env: dict) -> float:
    out = subprocess.run([sys.executable, "-c", CHILD, str(run), str(n_points), "1" if use_cache else "0"],
                         capture_output=True, text=True, env=env, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[5000, 50000])
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for size in args.sizes:
            run = fake_run(tmp, size)
            env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp / f"numba{size}"), "AVLAB_CACHE": str(tmp / "cache")}
            results[str(size)] = {
                "cold_s": round(timed(run, size, False, env), 1),
                "numba_cached_s": round(timed(run, size, False, env), 1),
                "layout_cached_s": round(timed(run, size, True, env), 2),
            }
    print(json.dumps({"benchmark": "umap_view", "time_to_first_figure": results,
                      "machine": f"{platform.machine()}, {os.cpu_count()} cores"}, indent=1))


if __name__ == "__main__":
    main()
