"""Independent jobs side by side, each in its own process with its share of the cores.

The main job's stages (one per task) share nothing but the machine. One after another, each with
every core, they leave cores idle: much of a stage is single-threaded (a notebook kernel starting,
its imports, the protocol, the HTML export) and a small model's step uses a second core poorly
(on 2 cores, an ADC-SSL epoch costs ~26 CPU-s on one thread and ~37 on two). Side by side, each
with ``cores // n`` of them (at least one), the same work keeps every core busy (README, "The main
job's recipe").

A job learns its share from ``$AVLAB_CORES`` (:func:`avlab.parallel.usable_cores`, which sizes
torch's threads and the worker pools) and ``$OMP_NUM_THREADS`` (torch's and BLAS's threads in the
notebook kernels it starts). Its output goes to a log file, so the terminal shows one progress bar
instead of several interleaved ones.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from avlab.parallel import CORES_ENV

GRACE_SECONDS = 10.0  # how long a stopped job may take to shut its notebook kernel down


@dataclass(frozen=True)
class Finished:
    """How one job ended."""

    name: str
    returncode: int
    seconds: float
    log: Path

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def how(self) -> str:
        if self.returncode < 0:
            return f"killed by signal {-self.returncode}"
        return "done" if self.ok else f"FAILED (exit {self.returncode})"

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def share_of(cores: int, jobs: int) -> int:
    """Cores for each of ``jobs`` run at once on ``cores``: an equal share, at least one.

    >>> share_of(2, 3), share_of(16, 3), share_of(4, 2)
    (1, 5, 2)
    """
    return max(1, cores // max(jobs, 1))


class SideBySide:
    """Jobs started one by one (:meth:`start`, e.g. each as soon as its data is ready), running at
    once, each told it has ``share`` cores, its output in ``logs/<name>.log``; :meth:`wait` says how
    each ended. A job that fails does not stop the others. Leaving the ``with`` block early (an
    error, Ctrl-C, SIGTERM, SIGHUP) stops the jobs still running: interrupted, then terminated,
    then killed, each after a grace period."""

    def __init__(self, logs: str | os.PathLike, share: int, total: int, progress: bool = True,
                 poll_seconds: float = 0.5):
        self.logs, self.poll_seconds = Path(logs), poll_seconds
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, CORES_ENV: str(share), "OMP_NUM_THREADS": str(share),
                    "PYTHONUNBUFFERED": "1"}  # the log shows what a job printed up to the moment it stopped
        self.started = time.monotonic()
        self.started_at: dict[str, float] = {}
        self.running: dict[str, tuple[subprocess.Popen, Path]] = {}
        self.finished: dict[str, Finished] = {}
        self.bar = tqdm(total=total, desc="side by side", unit="job", disable=not progress)
        self._handlers: dict = {}

    def __enter__(self) -> "SideBySide":
        self._handlers = _interrupt_on_termination()
        return self

    def __exit__(self, kind, exc, tb) -> None:
        try:
            alive = [name for name, (proc, _) in self.running.items() if proc.poll() is None]
            if alive:
                self.bar.write(f"stopping {', '.join(alive)} (logs in {self.logs})")
            _stop([proc for proc, _ in self.running.values()])
        finally:
            _restore(self._handlers)
            self.bar.close()

    def start(self, name: str, argv: list[str]) -> None:
        if name in self.running:
            raise ValueError(f"a job named {name!r} was started already")
        log = self.logs / f"{name}.log"
        self.started_at[name] = time.monotonic()
        with open(log, "w") as out:  # the child holds its own copy of the descriptor
            # its own process group: a Ctrl-C in the terminal reaches this process only, which
            # passes it on once (_stop) instead of the job getting it twice
            self.running[name] = (subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                                   stdin=subprocess.DEVNULL, env=self.env, process_group=0), log)
        self._show_running()

    def wait(self, refresh_seconds: float = 5.0) -> dict[str, Finished]:
        last_refresh = time.monotonic()
        while len(self.finished) < len(self.running):
            for name, (proc, log) in self.running.items():
                if name in self.finished or proc.poll() is None:
                    continue
                now = time.monotonic()
                done = self.finished[name] = Finished(name, proc.returncode, now - self.started_at[name], log)
                self.bar.update()
                self.bar.write(f"{name}: {done.how} after {done.seconds:.0f} s, {now - self.started:.0f} s into the "
                               f"job (log: {log})")
                self._show_running()
            if time.monotonic() - last_refresh >= refresh_seconds:  # the elapsed time moves while no job ends
                self.bar.refresh()  # (not at every poll: a log of the terminal would fill with bars)
                last_refresh = time.monotonic()
            time.sleep(self.poll_seconds)
        return dict(self.finished)

    def _show_running(self) -> None:
        self.bar.set_postfix_str("running: " + ", ".join(n for n in self.running if n not in self.finished))


def _stop(procs: list[subprocess.Popen]) -> None:
    """Interrupt the jobs still running (as Ctrl-C would), then terminate, then kill the stragglers."""
    for how in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        alive = [p for p in procs if p.poll() is None]
        for proc in alive:
            proc.send_signal(how)
        deadline = time.monotonic() + GRACE_SECONDS
        for proc in alive:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except (subprocess.TimeoutExpired, KeyboardInterrupt):  # another Ctrl-C: the next signal now
                break


_INSTALLED: dict = {}  # signal → the handler ours replaced, while jobs run


def _interrupt_on_termination() -> dict:
    """SIGTERM and SIGHUP raise KeyboardInterrupt while jobs run, so that they are stopped too
    (a batch system's cancel, a closed terminal); the previous handlers are returned. A signal
    that is ignored (``nohup``) stays ignored."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) in (signal.SIG_IGN, None):  # ignored, or a handler not set from Python
            continue
        try:
            _INSTALLED[sig] = signal.signal(sig, interrupt)
        except ValueError:  # not the main thread: leave the handlers alone
            break
    return dict(_INSTALLED)


def _restore(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
        _INSTALLED.pop(sig, None)


def _previous_handlers_in_child() -> None:
    # A process forked meanwhile (a generator's or decoder's worker pool) must die of SIGTERM as
    # before, not raise in its own copy of this process (Pool.terminate sends SIGTERM).
    for sig, handler in _INSTALLED.items():
        signal.signal(sig, handler)


os.register_at_fork(after_in_child=_previous_handlers_in_child)
