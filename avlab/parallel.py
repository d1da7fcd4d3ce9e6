"""Worker pools for data generation and decoding.

:func:`imap_watched` is the safe way to map over files: a worker's error comes back as itself (or
as a :class:`WorkerError` when it cannot be pickled) with the item named, and a watchdog turns a
pool that stops delivering — a decoder stuck on a file, a worker killed by a crash, a result the
parent cannot unpickle — into a :class:`PoolStalledError` instead of a silent hang.
"""
from __future__ import annotations

import functools
import math
import multiprocessing as mp
import os
import pickle
import traceback
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.pool import RemoteTraceback
from pathlib import Path

STALL_SECONDS = 300.0  # default watchdog; AVLAB_STALL_SECONDS overrides it for every call that does not set one


class PoolStalledError(TimeoutError):
    """No result came from the worker pool for ``stall_seconds``; ``pending`` names the items it
    was waiting on (a decoder hanging on one of them, or a worker that died)."""

    def __init__(self, message: str, pending: list[str] = ()):
        super().__init__(message)
        self.pending = list(pending)


class WorkerError(RuntimeError):
    """A worker's exception that could not be sent to the parent as itself (it does not pickle);
    the message keeps its type and text."""


CORES_ENV = "AVLAB_CORES"


def usable_cores() -> int:
    """The cores this process may count as its own: ``$AVLAB_CORES`` when set (the share that
    :mod:`avlab.stages` gives each of the jobs it runs side by side), else those the OS lets it run
    on (``taskset``, a cgroup cpuset, a SLURM allocation), capped by a CPU quota (``docker --cpus``,
    a Kubernetes limit: :func:`cpu_quota`), else all of the machine's."""
    given = os.environ.get(CORES_ENV)
    if given:
        if not given.strip().isdigit() or int(given) < 1:
            raise ValueError(f"{CORES_ENV} must be a whole number of cores >= 1, got {given!r}")
        return int(given)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    quota = cpu_quota()
    return max(1, min(cores, math.ceil(quota))) if quota else cores


def cpu_quota(cgroup_root: str = "/sys/fs/cgroup") -> float | None:
    """The CPU time this container may use, in cores (``docker --cpus 1.5`` → 1.5), or None when
    there is no quota. A quota does not show in the affinity mask: without it, a job in a
    2-CPU container on a 64-core host would start 64 threads that share 2 CPUs' worth of time.
    Reads cgroup v2's ``cpu.max`` ("max 100000" or "150000 100000") or v1's ``cpu.cfs_quota_us``
    / ``cpu.cfs_period_us`` (quota -1: none) at the mount root, where a container sees its own."""
    root = Path(cgroup_root)
    try:
        if (root / "cpu.max").exists():
            quota, period = (root / "cpu.max").read_text().split()[:2]
        else:
            quota = (root / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (root / "cpu" / "cpu.cfs_period_us").read_text().strip()
        if quota in ("max", "-1") or int(period) <= 0:
            return None
        return int(quota) / int(period)
    except (OSError, ValueError):
        return None  # no cgroup CPU controller here (not Linux, or not mounted), or unreadable: no quota


def pool(workers: int, start_method: str | None = None):
    """A process pool: fork where available (workers only need numpy/OpenCV/PyAV/espeak, and fork
    works from scripts without a ``__main__`` guard), spawn elsewhere."""
    method = start_method or ("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    return mp.get_context(method).Pool(workers)


def _stall_seconds() -> float:
    return float(os.environ.get("AVLAB_STALL_SECONDS", STALL_SECONDS))


def imap_watched(fn: Callable, items: Iterable, workers: int = 2, *, name: Callable = str,
                 stall_seconds: float | None = None, chunksize: int = 1,
                 start_method: str | None = None) -> Iterator:
    """``fn(item)`` for each item in a process pool, yielded in input order.

    * An exception raised by ``fn`` is raised here (the pool is then terminated), with a note that
      names the item by ``name(item)`` and the worker's traceback as its cause.
    * If no result arrives for ``stall_seconds`` (default :data:`STALL_SECONDS` or
      ``$AVLAB_STALL_SECONDS``), :class:`PoolStalledError` names the pending items.
    * ``workers=0`` runs in this process (for debugging; no watchdog).

    ``fn`` must be picklable (a module-level function) and so must its results.
    """
    items = list(items)
    if workers <= 0:
        yield from map(fn, items)
        return
    stall = _stall_seconds() if stall_seconds is None else stall_seconds
    jobs = list(enumerate(items))
    # Chunks are made here: Pool.imap_unordered(chunksize > 1) returns a plain generator, whose
    # next() takes no timeout.
    chunks = [jobs[k:k + chunksize] for k in range(0, len(jobs), chunksize)]
    done, next_out = {}, 0  # results that arrived ahead of their turn; index of the next to yield
    with pool(workers, start_method) as workers_pool:
        results = workers_pool.imap_unordered(functools.partial(_call, fn), chunks)
        for _ in chunks:
            try:
                chunk = results.next(timeout=stall)
            except mp.TimeoutError:
                raise _stalled(items, done, next_out, workers * chunksize, stall, name) from None
            for i, ok, value in chunk:
                if not ok:
                    raise _reraise(value, name(items[i]))
                done[i] = value
            while next_out in done:
                yield done.pop(next_out)
                next_out += 1


def _call(fn: Callable, chunk: list[tuple]) -> list[tuple]:
    """Runs in the worker: (index, True, result) or (index, False, (exception, traceback text)) per item."""
    out = []
    for i, item in chunk:
        try:
            out.append((i, True, fn(item)))
        except Exception as exc:
            out.append((i, False, (_sendable(exc), traceback.format_exc())))
    return out


def _sendable(exc: Exception) -> Exception:
    # An exception the parent cannot rebuild kills the pool's result thread and the map never ends,
    # so try the round trip here and fall back to a plain message.
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return WorkerError(f"{type(exc).__name__}: {exc}")


def _reraise(failure: tuple, item_name: str) -> Exception:
    exc, tb = failure
    exc.add_note(f"(raised in a worker process on {item_name})")
    exc.__cause__ = RemoteTraceback(tb)
    return exc


def _stalled(items: list, done: dict, next_out: int, in_flight: int, stall: float, name: Callable) -> PoolStalledError:
    # Tasks are handed out in order, so the oldest unfinished ones are those being worked on.
    pending = [name(items[i]) for i in range(next_out, len(items)) if i not in done][:in_flight]
    return PoolStalledError(
        f"no result from the worker pool for {stall:g} s; still waiting on: {', '.join(pending)} "
        "(a decoder may hang on it, or a worker died; set AVLAB_STALL_SECONDS if it is merely slow)", pending)
