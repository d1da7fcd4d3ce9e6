"""Papermill sweeps: one notebook over a parameter grid, each run in its own process.

``grid.yaml``::

    fixed:                       # passed to every run
      data_dir: data/talking-faces-quick
      epochs: 20
    grid:                        # the cartesian product of these
      method: [cid, cmpc]
      seed: [0, 1]

Every run gets its own folder ``<out>/<NNN>-<key=value,…>/`` holding the executed notebook (kept
when it fails, with the error in it), its HTML export and whatever the notebook writes — the
notebook's ``out_dir`` parameter is set to that folder. A run that fails, exceeds ``timeout_s`` or
the ``memory_gb`` guard is marked failed; the others carry on. ``sweep.csv`` lists every run with
its status, time, parameters and (when it wrote an ``eval.json``) its unseen-unheard metrics.
"""
from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from tqdm.auto import tqdm

from avlab.notebooks import export_html, notebook_path

def load_grid(path: str | Path) -> tuple[dict, list[dict]]:
    """(fixed parameters, one dict per grid point) from a grid YAML file."""
    path = Path(path)
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(spec, dict) or not isinstance(spec.get("grid", {}), dict):
        raise ValueError(f"{path}: expected a mapping with 'fixed' and 'grid' sections")
    grid = spec.get("grid") or {}
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"{path}: grid entry {key!r} must be a non-empty list")
    keys = list(grid)
    points = [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))] or [{}]
    return dict(spec.get("fixed") or {}), points


def run_name(index: int, params: dict) -> str:
    """``003-method=cmpc,seed=1``: sortable, readable, safe as a folder name."""
    body = ",".join(f"{k}={v}" for k, v in params.items()) or "run"
    return f"{index:03d}-" + re.sub(r"[^A-Za-z0-9=,._-]+", "_", body)[:100]


def _tree_rss(proc) -> int:
    import psutil

    try:
        p = psutil.Process(proc.pid)
        return sum(c.memory_info().rss for c in [p, *p.children(recursive=True)])
    except psutil.Error:
        return 0


def _kill_tree(proc) -> None:
    import psutil

    try:
        p = psutil.Process(proc.pid)
        for c in p.children(recursive=True):
            c.kill()
        p.kill()
    except psutil.Error:
        pass


def run_one(notebook: Path, run_dir: Path, params: dict, timeout_s: float | None, memory_gb: float | None) -> dict:
    """Execute one notebook run in a papermill subprocess under the time and memory guards."""
    run_dir.mkdir(parents=True, exist_ok=True)
    executed = run_dir / notebook.name
    (run_dir / "params.json").write_text(json.dumps(params, indent=1))
    cmd = [sys.executable, "-m", "papermill", str(notebook), str(executed), "-y", yaml.safe_dump(params),
           "--kernel", "python3", "--cwd", os.getcwd(), "--no-progress-bar"]
    start = time.time()
    log = open(run_dir / "papermill.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    status, error = "ok", ""
    while proc.poll() is None:
        time.sleep(0.5)
        if timeout_s and time.time() - start > timeout_s:
            _kill_tree(proc)
            status, error = "failed", f"timeout: exceeded {timeout_s:g} s"
        elif memory_gb and _tree_rss(proc) > memory_gb * 2**30:
            _kill_tree(proc)
            status, error = "failed", f"memory: exceeded {memory_gb:g} GiB"
    proc.wait()
    log.close()
    if status == "ok" and proc.returncode != 0:
        status, error = "failed", _notebook_error(executed) or _last_line(run_dir / "papermill.log")
    if executed.exists():
        try:
            export_html(executed)
        except Exception as exc:  # an unreadable half-written notebook must not stop the sweep
            error = error or f"html export failed: {exc}"
    return {"run": run_dir.name, "status": status, "error": error, "seconds": round(time.time() - start, 1), **params}


def _notebook_error(executed: Path) -> str:
    if not executed.exists():
        return ""
    nb = json.loads(executed.read_text())
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return f"{out.get('ename')}: {out.get('evalue')}"[:500]
    return ""


def _last_line(log: Path) -> str:
    lines = [l for l in log.read_text(errors="replace").splitlines() if l.strip()]
    return lines[-1][:500] if lines else "failed without output"


def _metrics(run_dir: Path) -> dict:
    path = run_dir / "eval.json"
    if not path.exists():
        return {}
    from avlab.runs import task_of

    result = json.loads(path.read_text())
    return task_of(result).headline(result)


@dataclass
class SlurmOptions:
    """Resources of each grid point's SLURM job (``avlab sweep --executor slurm``)."""

    partition: str | None = None
    gpus: int = 1
    cpus: int = 8
    mem_gb: float = 32
    time_min: int = 24 * 60
    array_parallelism: int = 16
    extra: dict = field(default_factory=dict)  # any other submitit slurm_* parameter


class GridPoint:
    """One grid point as a submitit job: runs the notebook into its folder and returns the summary
    row. On preemption or timeout SLURM requeues it (``checkpoint``), and the rerun resumes the
    run from its own checkpoint (the training notebook resumes an existing run folder)."""

    def __init__(self, notebook: Path, run_dir: Path, params: dict, timeout_s: float | None,
                 memory_gb: float | None):
        self.args = (notebook, run_dir, params, timeout_s, memory_gb)

    def __call__(self) -> dict:
        row = run_one(*self.args)
        row.update(_metrics(self.args[1]))
        return row

    def checkpoint(self):
        import submitit

        return submitit.helpers.DelayedSubmission(GridPoint(*self.args))


def _submitit_rows(jobs: list[tuple[Path, dict]], nb: Path, out: Path, executor: str, timeout_s, memory_gb,
                   slurm: SlurmOptions, progress: bool) -> list[dict]:
    """Submit every point as one job array (``executor`` slurm, or submitit's ``local`` for tests)
    and gather the rows; a job that fails or is cancelled becomes a failed row, never a crash."""
    import submitit

    ex = submitit.AutoExecutor(folder=str(out / "submitit"), cluster=None if executor == "slurm" else "local")
    params = {"timeout_min": slurm.time_min, "cpus_per_task": slurm.cpus, "mem_gb": slurm.mem_gb,
              "slurm_array_parallelism": slurm.array_parallelism}
    if executor == "slurm":
        params.update(gpus_per_node=slurm.gpus, slurm_partition=slurm.partition,
                      **{k if k.startswith("slurm_") else f"slurm_{k}": v for k, v in slurm.extra.items()})
    ex.update_parameters(**{k: v for k, v in params.items() if v is not None})
    points = [GridPoint(nb, d, p, timeout_s, memory_gb) for d, p in jobs]
    with ex.batch():
        submitted = [ex.submit(point) for point in points]
    rows = []
    for job, (run_dir, p) in tqdm(list(zip(submitted, jobs)), desc=f"sweep {out.name} ({executor})", unit="run",
                                  disable=not progress):
        try:
            rows.append(job.result())
        except Exception as exc:  # the job itself died (node failure, cancelled, out of memory …)
            rows.append({"run": run_dir.name, "status": "failed", "error": f"job {job.job_id}: {exc}"[:500],
                         "seconds": None, **p})
        rows[-1]["job_id"] = job.job_id
    return rows


def run_sweep(notebook: str, grid: str | Path, out: str | Path, workers: int = 1, timeout_s: float | None = None,
              memory_gb: float | None = None, progress: bool = True, executor: str = "local",
              slurm: SlurmOptions | None = None):
    """Run every grid point; returns the summary table (also written to ``out/sweep.csv``).

    ``executor``: ``local`` (papermill processes here, ``workers`` at a time), ``slurm`` (one SLURM
    array job per sweep through submitit, resources from ``slurm``), or ``submitit-local``
    (submitit's local executor: the SLURM path without a cluster, for tests).
    """
    import pandas as pd

    if executor not in ("local", "slurm", "submitit-local"):
        raise ValueError(f"unknown executor {executor!r} (local | slurm | submitit-local)")
    nb = notebook_path(notebook)
    fixed, points = load_grid(grid)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = []
    for i, point in enumerate(points):
        run_dir = out / run_name(i, point)
        jobs.append((run_dir, {**fixed, **point, "out_dir": str(run_dir.resolve())}))
    (out / "sweep.json").write_text(json.dumps({"notebook": str(nb), "grid": str(grid), "fixed": fixed,
                                                "points": points, "workers": workers, "executor": executor}, indent=1))
    if executor != "local":
        rows = _submitit_rows(jobs, nb, out, executor, timeout_s, memory_gb, slurm or SlurmOptions(), progress)
        table = pd.DataFrame(rows).drop(columns=["out_dir"], errors="ignore")
        table.to_csv(out / "sweep.csv", index=False)
        return table
    rows = []
    bar = tqdm(total=len(jobs), desc=f"sweep {out.name}", unit="run", disable=not progress)
    # Threads only wait on the papermill subprocesses; the work happens in those processes.
    with ThreadPoolExecutor(max_workers=max(1, workers)) as ex:
        futures = [ex.submit(run_one, nb, d, p, timeout_s, memory_gb) for d, p in jobs]
        for fut, (run_dir, _) in zip(futures, jobs):
            row = fut.result()
            row.update(_metrics(run_dir))
            rows.append(row)
            bar.update()
            bar.set_postfix(failed=sum(r["status"] != "ok" for r in rows))
    bar.close()
    table = pd.DataFrame(rows).drop(columns=["out_dir"], errors="ignore")
    table.to_csv(out / "sweep.csv", index=False)
    return table
