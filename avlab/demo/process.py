"""``avlab demo`` in a child process on a free loopback port — for tests, benchmarks and notebooks
that need a real server, and a clean shutdown afterwards."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def demo_process(run: str | os.PathLike | list, log_path: str | os.PathLike, extra_args=(), port: int | None = None,
                 startup_timeout: float = 180.0, env: dict | None = None):
    """Yield ``(url, port, process)`` once the demo of ``run`` (or of a list of runs, one per task)
    answers HTTP; stop it on exit.

    Its output goes to ``log_path``; a server that exits or does not answer in time raises
    RuntimeError with that log, so a failure says why.
    """
    import httpx

    port = port or free_port()
    runs = run if isinstance(run, (list, tuple)) else [run]
    cmd = [sys.executable, "-m", "avlab.cli", "demo", "--run", *map(str, runs), "--port", str(port),
           *map(str, extra_args)]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the demo server exited:\n{Path(log_path).read_text()}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the demo server did not answer in {startup_timeout:.0f} s:\n"
                                   f"{Path(log_path).read_text()}")
            time.sleep(0.5)
        yield url, port, proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
