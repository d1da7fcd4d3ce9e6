"""Time to the first UMAP figure in a fresh process (a new kernel), cold, cached and fast; prints JSON.

    python benchmarks/umap_view.py [--sizes 20000 5000] [--repeats 3]

For each size, a synthetic run folder gets clustered 128-d embeddings (half voices, half faces)
and fresh Python processes build the notebook's figure, serialised as the notebook displays it;
each case runs ``--repeats`` times (each in a new process) and reports every time:
- ``cold_s``: ``umap_layout`` + ``umap_figure`` with an empty numba cache and no cached layout
  (a machine's first view);
- ``numba_cached_s``: the same with numba's compiled kernels on disk (a new run's first view);
- ``layout_cached_s``: the run's layout already cached (re-opening a view);
- ``fast_cold`` / ``fast_numba_cached``: ``first_view`` (what notebook 03 does), no cached layout,
  numba cache empty / warm: ``first_figure_s`` is the PCA preview's figure, ``umap_figure_s``
  the UMAP figure once the background layout is done.
The machine's load average is printed too: the times are wall-clock.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = """
import json, sys, time
t0 = time.perf_counter()
from avlab.viz.umap_view import first_view, umap_figure, umap_layout
run, n, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if mode == "fast":
    points, pending = first_view(run, max_points=n)
    umap_figure(points, "identity").to_json()
    first = time.perf_counter() - t0
    umap_figure(pending.result(), "identity").to_json()
    print(json.dumps({"first_figure_s": first, "umap_figure_s": time.perf_counter() - t0,
                      "first_layout": points.attrs["layout"]}))
else:
    umap_figure(umap_layout(run, max_points=n, use_cache=mode == "cached"), "identity").to_json()
    print(json.dumps({"s": time.perf_counter() - t0}))
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


def timed(run: Path, n_points: int, mode: str, numba_dir: Path, tmp: Path) -> dict:
    if mode == "fast":
        shutil.rmtree(run / "umap", ignore_errors=True)  # no cached layout
    env = {**os.environ, "NUMBA_CACHE_DIR": str(numba_dir), "AVLAB_CACHE": str(tmp / "cache")}
    out = subprocess.run([sys.executable, "-c", CHILD, str(run), str(n_points), mode],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def summary(times: list[float], digits: int = 1) -> dict:
    return {"median": round(statistics.median(times), digits), "min": round(min(times), digits),
            "max": round(max(times), digits), "all": [round(t, digits) for t in times]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[20000])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    results = {}
    load = [round(x, 1) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for size in args.sizes:
            run = fake_run(tmp, size)
            cases = {k: [] for k in ("cold_s", "numba_cached_s", "layout_cached_s")}
            fast = {k: {"first_figure_s": [], "umap_figure_s": []} for k in ("fast_cold", "fast_numba_cached")}
            for rep in range(args.repeats):
                cold_dir, warm_dir = tmp / f"numba-cold{size}-{rep}", tmp / f"numba-fast{size}-{rep}"
                cases["cold_s"].append(timed(run, size, "uncached", cold_dir, tmp)["s"])
                cases["numba_cached_s"].append(timed(run, size, "uncached", cold_dir, tmp)["s"])
                cases["layout_cached_s"].append(timed(run, size, "cached", cold_dir, tmp)["s"])
                for case, numba_dir in (("fast_cold", warm_dir), ("fast_numba_cached", warm_dir)):
                    r = timed(run, size, "fast", numba_dir, tmp)  # first: empty numba cache, then warm
                    assert r["first_layout"] == "pca", r
                    for k in ("first_figure_s", "umap_figure_s"):
                        fast[case][k].append(r[k])
            results[str(size)] = {
                **{k: summary(v, 2 if k == "layout_cached_s" else 1) for k, v in cases.items()},
                **{case: {k: summary(v) for k, v in d.items()} for case, d in fast.items()}}
    print(json.dumps({"benchmark": "umap_view", "time_to_first_figure": results, "repeats": args.repeats,
                      "load_average_1_5_15_min": {"start": load, "end": [round(x, 1) for x in os.getloadavg()]},
                      "machine": f"{platform.machine()}, {os.cpu_count()} cores"}, indent=1))


if __name__ == "__main__":
    main()
