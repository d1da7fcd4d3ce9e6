"""The idle-priority background queue the main job prepares its later stages with."""
import os
import sys
import time

import pytest

from avlab.idle import IdleQueue

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_getscheduler"), reason="Linux scheduling classes")


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_keys_run_in_order_at_idle_priority_with_their_output_logged(tmp_path):
    order = tmp_path / "order.txt"
    q = IdleQueue(tmp_path / "logs")
    q.add("a", [_py(f"open({str(order)!r}, 'a').write('a1 ')"), _py(f"open({str(order)!r}, 'a').write('a2 ')")])
    q.add("b", [_py("import os; print('policy', os.sched_getscheduler(0), 'nice', os.nice(0), 'sid', os.getsid(0))")])
    q.start()
    assert q.wait("b") and q.wait("a") and q.done("a") and q.keys == ["a", "b"]
    assert order.read_text() == "a1 a2 "
    log = q.log_of("b").read_text()
    idle = getattr(os, "SCHED_IDLE", None)
    assert f"policy {idle}" in log or "nice 19" in log, log  # SCHED_IDLE, else the nice fallback
    # the caller's session: a session of its own would be an autogroup with an equal share of the CPU
    assert f"sid {os.getsid(0)}" in log


def test_a_failed_command_skips_the_rest_of_its_key_but_not_the_next_key(tmp_path):
    marker = tmp_path / "ran"
    q = IdleQueue(tmp_path / "logs")
    q.add("bad", [_py("import sys; print('broken input'); sys.exit(3)"), _py(f"open({str(marker)!r}, 'w')")])
    q.add("good", [_py("print('fine')")])
    q.start()
    assert q.wait("bad") is False and not marker.exists()
    assert "broken input" in q.log_of("bad").read_text()
    assert q.wait("good") is True


def test_close_stops_the_running_command_and_fails_what_is_left(tmp_path):
    q = IdleQueue(tmp_path / "logs")
    q.add("slow", [_py("import time; time.sleep(60)")])
    q.add("later", [_py("print('never')")])
    q.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    q.close()
    assert q.wait("slow") is False and q.wait("later") is False
    assert time.monotonic() - t0 < 10


def test_wait_on_a_queue_never_started_returns_false(tmp_path):
    q = IdleQueue(tmp_path / "logs")
    q.add("a", [_py("pass")])
    assert q.wait("a") is False
