"""Jobs side by side (avlab.stages) and the main job's use of them (avlab run-main)."""
from __future__ import annotations

import json
import math
import os
import sys

import pytest

from avlab.parallel import cpu_quota, usable_cores
from avlab.runs import default_threads, default_workers
from avlab.stages import SideBySide, share_of
from avlab.tasks.base import Task


def run_side_by_side(commands: dict[str, list[str]], logs, **options) -> dict:
    """Start every command at once and wait for all."""
    with SideBySide(logs, total=len(commands), **options) as jobs:
        for name, argv in commands.items():
            jobs.start(name, argv)
        return jobs.wait()

# A job that reports the share it was given, as the runs it starts would see it.
REPORT_SHARE = ("import os; from avlab.parallel import usable_cores; from avlab.runs import default_threads; "
                "print('cores', usable_cores(), 'omp', os.environ['OMP_NUM_THREADS'], 'threads', default_threads(0))")


def _meet(me: str, other: str, folder, exit_code: int = 0) -> list[str]:
    """A job that leaves a mark and waits (30 s at most) for ``other``'s: it ends well only if the
    two ran at the same time."""
    code = ("import pathlib, sys, time; d = pathlib.Path(sys.argv[1]); (d / sys.argv[2]).touch(); "
            "end = time.time() + 30\n"
            "while not (d / sys.argv[3]).exists():\n"
            "    if time.time() > end: print('alone'); sys.exit(9)\n"
            "    time.sleep(0.05)\n"
            "print(sys.argv[2], 'met', sys.argv[3]); sys.exit(int(sys.argv[4]))")
    return [sys.executable, "-c", code, str(folder), me, other, str(exit_code)]


def test_each_job_gets_its_share_of_the_cores_and_its_own_log_and_a_failure_stops_no_other(tmp_path):
    commands = {"a": [sys.executable, "-c", REPORT_SHARE],
                "b": _meet("b", "c", tmp_path, exit_code=3), "c": _meet("c", "b", tmp_path)}
    finished = run_side_by_side(commands, tmp_path / "logs", share=1, progress=False, poll_seconds=0.05)

    assert set(finished) == {"a", "b", "c"}
    assert finished["a"].ok and finished["c"].ok and not finished["b"].ok and finished["b"].returncode == 3
    assert finished["b"].how == "FAILED (exit 3)"
    # one core each, and the runs the job starts size their torch threads by it
    assert (tmp_path / "logs" / "a.log").read_text().splitlines()[-1].split() == ["cores", "1", "omp", "1",
                                                                                   "threads", "1"]
    assert finished["b"].log_tail() == "b met c" and (tmp_path / "logs" / "c.log").read_text() == "c met b\n"


def test_an_interrupted_side_by_side_run_stops_the_jobs_it_started(tmp_path, monkeypatch):
    """A job that cannot be started (a missing program) interrupts the run: the one already started
    is stopped and reaped, not left running."""
    import subprocess

    started, real_popen = [], subprocess.Popen

    def recording_popen(*args, **kwargs):
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(subprocess, "Popen", recording_popen)
    commands = {"sleeper": [sys.executable, "-c", "import time; time.sleep(60)"],
                "missing": [str(tmp_path / "no-such-program")]}
    with pytest.raises(FileNotFoundError):
        run_side_by_side(commands, tmp_path / "logs", share=1, progress=False)
    assert len(started) == 1 and started[0].returncode is not None  # stopped and waited for


def test_while_jobs_run_termination_interrupts_this_process_but_not_its_worker_pools(tmp_path, capfd):
    """SIGTERM and SIGHUP raise KeyboardInterrupt here while jobs run (so that they are stopped);
    an ignored SIGHUP (nohup) stays ignored; a worker pool forked meanwhile still dies quietly of the
    SIGTERM its pool sends when it closes; the handlers are put back afterwards."""
    import signal

    assert _dies_of_sigterm_when_forked(tmp_path)  # as a worker pool's process does when its pool closes
    before_term, before_hup = signal.getsignal(signal.SIGTERM), signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with SideBySide(tmp_path / "logs", share=1, total=0, progress=False) as jobs:
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            with pytest.raises(KeyboardInterrupt, match="signal 15"):
                os.kill(os.getpid(), signal.SIGTERM)
            assert jobs.wait() == {}
        assert signal.getsignal(signal.SIGTERM) is before_term and signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before_hup)
    assert "KeyboardInterrupt" not in capfd.readouterr().err


# In a fresh interpreter (forking the test process, with its threads, can hang the child): a child
# forked while jobs run says it is ready, gets SIGTERM, and must die of it.
FORK_AND_TERMINATE = """
import os, signal, sys, time
from avlab.stages import SideBySide
signal.signal(signal.SIGTERM, signal.SIG_DFL)
with SideBySide(sys.argv[1], share=1, total=0, progress=False):
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(ready_w, b"1")
            time.sleep(30)
        finally:
            os._exit(3)
    os.read(ready_r, 1)
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + 20
    while time.time() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            print("signalled" if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM else "exited")
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        print("hung")
"""


def _dies_of_sigterm_when_forked(tmp_path) -> bool:
    import subprocess

    out = subprocess.run([sys.executable, "-c", FORK_AND_TERMINATE, str(tmp_path / "fork-logs")],
                         capture_output=True, text=True, timeout=120)
    return out.stdout.strip() == "signalled"


def test_usable_cores_follows_avlab_cores_and_refuses_nonsense(monkeypatch):
    monkeypatch.setenv("AVLAB_CORES", "3")
    assert usable_cores() == 3 and default_threads(1) == 2 and default_workers() == 3
    monkeypatch.setenv("AVLAB_CORES", "0")
    with pytest.raises(ValueError, match="AVLAB_CORES must be a whole number of cores >= 1, got '0'"):
        usable_cores()
    monkeypatch.delenv("AVLAB_CORES")
    assert usable_cores() == min(len(os.sched_getaffinity(0)), math.ceil(cpu_quota() or 1e9))


@pytest.mark.parametrize("files, quota", [
    ({"cpu.max": "150000 100000\n"}, 1.5),  # cgroup v2, docker --cpus 1.5
    ({"cpu.max": "max 100000\n"}, None),
    ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2.0),  # cgroup v1
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({}, None),  # no CPU controller mounted
])
def test_cpu_quota_reads_cgroup_v1_and_v2(tmp_path, files, quota):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cpu_quota(str(tmp_path)) == quota


def test_usable_cores_is_capped_by_a_cpu_quota(monkeypatch):
    import avlab.parallel as parallel

    monkeypatch.delenv("AVLAB_CORES", raising=False)
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda pid: set(range(64)))
    monkeypatch.setattr(parallel, "cpu_quota", lambda: 1.5)
    assert usable_cores() == 2  # a 64-core host, a container allowed 1.5 CPUs' worth of time
    monkeypatch.setattr(parallel, "cpu_quota", lambda: 0.2)
    assert usable_cores() == 1
    monkeypatch.setattr(parallel, "cpu_quota", lambda: None)
    assert usable_cores() == 64


def _fake_stage(record_path, record: dict) -> list[str]:
    """A command that behaves like a stage of run-main that finished: it writes the stage's record."""
    return [sys.executable, "-c", "import pathlib, sys; p = pathlib.Path(sys.argv[1]); "
            "p.parent.mkdir(parents=True, exist_ok=True); p.write_text(sys.argv[2])", str(record_path),
            json.dumps(record)]


def test_the_main_job_runs_its_stages_side_by_side_and_reports_each(tmp_path, monkeypatch, capsys):
    """Every set is made and decoded; each stage then runs in its own process (the command that
    ``avlab run-main --tasks STAGE`` would be), and the job prints each finished stage's table and
    outputs; a stage that fails, or ends without its record (one left by an earlier job does not
    stand in for it), is named with the end of its log, and the job exits 1."""
    import avlab.cli as cli
    from avlab.registry import TASKS

    made, decoded, tables, launched = [], [], [], {}

    def fake_set(data, profile, workers, benchmark):
        made.append(benchmark)
        return data

    monkeypatch.setattr(cli, "ensure_profile_set", fake_set)
    monkeypatch.setattr(cli, "check_quick_set", lambda data, benchmark: None)
    monkeypatch.setattr(Task, "warm_cache", lambda self, data, cfg, workers: decoded.append((self.name, cfg)))
    monkeypatch.setattr(cli, "_print_table", lambda title, runs: tables.append((title, runs)))
    real_command = cli._stage_command

    def fake_command(task, args, out, share):
        launched[task] = cli.build_parser().parse_args(real_command(task, args, out, share)[3:])
        if task == "lip-reading":  # ends well but writes no record: the stale one must not stand in
            return [sys.executable, "-c", "print('no record written')"]
        if task == "sound-localisation":
            return [sys.executable, "-c", "print('stage broke'); raise SystemExit(5)"]
        return _fake_stage(cli._stage_record(out, task),
                           {"title": f"{task} table", "runs": [f"{task}-run"], "outputs": [f"  {task} output"]})

    monkeypatch.setattr(cli, "_stage_command", fake_command)
    out = tmp_path / "main"
    stale = cli._stage_record(out.resolve(), "lip-reading")
    stale.parent.mkdir(parents=True)
    stale.write_text(json.dumps({"title": "stale table", "runs": ["old-run"], "outputs": ["  stale output"]}))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run-main", "--out", "main", "--data", "tf", "--workers", "2", "--epochs", "3"]) == 1

    assert made == ["talking-faces", "lip-words", "sounding-objects"]
    # decoded as each stage's recipe reads them
    assert [(name, cfg) for name, cfg in decoded] == [
        (t, TASKS.get(t).Config(**cli._stage_task_options(t))) for t in cli.DEFAULT_STAGES]
    # each stage's own command: one task, the same sets (absolute) and folder, workers that fit its share
    share = share_of(usable_cores(), 3)
    assert {t: a.tasks for t, a in launched.items()} == {t: [t] for t in cli.DEFAULT_STAGES}
    assert all(a.out == str(out.resolve()) and a.epochs == 3 and a.workers == min(2, share - 1)
               and a.data == str((tmp_path / "tf").resolve()) for a in launched.values())
    assert tables == [("voice-face table", ["voice-face-run"])]
    printed = capsys.readouterr()
    assert "the lip-reading stage ended without its record" in printed.err and "no record written" in printed.err
    assert "the sound-localisation stage FAILED (exit 5)" in printed.err and "stage broke" in printed.err
    assert "  voice-face output" in printed.out and "stale" not in printed.out
    assert "the lip-reading, sound-localisation stage(s) failed" in printed.out
