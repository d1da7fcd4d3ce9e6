"""Work done on otherwise idle CPU: commands run one after another in the background at the lowest
scheduling priority, each with its output in a log file.

The main job uses it to prepare its later stages (generate their synthetic sets, decode them into
the cache) while the first stage trains: a training step leaves part of the cores idle between
its kernels, and a process in Linux's ``SCHED_IDLE`` class runs only then, so the foreground is not
slowed (measured: README, "The main job"). Where ``SCHED_IDLE`` is missing, ``nice 19`` stands in.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path


def lower_to_idle_priority() -> None:
    """Put the calling process (and the processes it starts later) at idle CPU priority."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        os.nice(19)


class IdleQueue:
    """Runs keyed lists of commands in order in a background thread, at idle priority.

    ``add(key, commands)`` before ``start()``; ``wait(key)`` blocks until that key's commands have
    run and returns whether they all succeeded (a failed command skips the rest of its key and
    leaves its log, named in :meth:`log_of`). ``close()`` stops whatever is still running.
    """

    def __init__(self, log_dir: str | os.PathLike, env: dict | None = None):
        self.log_dir = Path(log_dir)
        self.env = env
        self._jobs: list[tuple[str, list[list[str]]]] = []
        self._done: dict[str, threading.Event] = {}
        self._ok: dict[str, bool] = {}
        self._proc: subprocess.Popen | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="avlab-idle-queue", daemon=True)

    def add(self, key: str, commands: list[list[str]]) -> None:
        if self._thread.is_alive():
            raise RuntimeError("IdleQueue.add after start()")
        self._jobs.append((key, commands))
        self._done[key] = threading.Event()

    def start(self) -> "IdleQueue":
        if self._jobs:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self._thread.start()
        return self

    @property
    def keys(self) -> list[str]:
        return [key for key, _ in self._jobs]

    def done(self, key: str) -> bool:
        return self._done[key].is_set()

    def log_of(self, key: str) -> Path:
        return self.log_dir / f"{key}.log"

    def wait(self, key: str) -> bool:
        """True when every command of ``key`` exited with 0; False if one failed or the queue was closed."""
        if not self._thread.is_alive() and not self._done[key].is_set():
            return False  # never started
        self._done[key].wait()
        return self._ok.get(key, False)

    def close(self) -> None:
        self._closed = True
        proc = self._proc
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the command and the workers it started
            proc.wait()

    def _run(self) -> None:
        for key, commands in self._jobs:
            ok = True
            with open(self.log_of(key), "w") as log:
                for command in commands:
                    if self._closed:
                        ok = False
                        break
                    log.write(f"$ {' '.join(command)}\n")
                    log.flush()
                    # Its own process group (so that close() stops its workers too) but the caller's
                    # session: with autogroup scheduling (most desktop kernels) a new session would be
                    # a new group that takes an equal share of the CPU whatever its priority.
                    self._proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                                  process_group=0, preexec_fn=lower_to_idle_priority)
                    if self._proc.wait() != 0:
                        ok = False
                        break
            self._ok[key] = ok and not self._closed
            self._done[key].set()
