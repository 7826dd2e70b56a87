"""newswatch/shutdown.py in a real process: warm stop, cold stop, the debounce and the warm bound."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from tests.waiting import wait_for

# A process that finishes its "work" only when told to (a file appears), and records its cold steps.
_SCRIPT = """
import pathlib, sys, time
from newswatch.shutdown import Shutdown
out = pathlib.Path(sys.argv[1])
bound = float(sys.argv[2]) if sys.argv[2] != "none" else None
with Shutdown(warm_message="warm", cold_message="cold", warm_bound=bound, cold_bound=5) as stop:
    stop.on_cold("fail first", lambda: 1 / 0)
    stop.on_cold("record", lambda: (out / "cold").write_text("done"))
    (out / "ready").write_text("")
    stop.requested.wait()
    while not (out / "finish").exists():  # the work in flight
        time.sleep(0.05)
(out / "warm").write_text("done")
"""


def _start(tmp_path, bound="none"):
    proc = subprocess.Popen([sys.executable, "-c", _SCRIPT, str(tmp_path), bound], stderr=subprocess.PIPE)
    assert wait_for(lambda: (tmp_path / "ready").exists(), timeout=30)
    return proc


def test_first_signal_is_a_warm_stop(tmp_path):
    proc = _start(tmp_path)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGTERM)  # the same request delivered twice at once: still warm
    (tmp_path / "finish").write_text("")
    assert proc.wait(timeout=30) == 0
    assert (tmp_path / "warm").exists() and not (tmp_path / "cold").exists()


def test_second_signal_runs_every_cold_step_and_exits_1(tmp_path):
    proc = _start(tmp_path)
    proc.send_signal(signal.SIGINT)
    time.sleep(1.5)  # past the debounce
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 1
    assert (tmp_path / "cold").read_text() == "done", "a failing step does not stop the next"
    assert not (tmp_path / "warm").exists()
    assert b"could not fail first" in proc.stderr.read()


def test_a_warm_stop_past_its_bound_turns_cold(tmp_path):
    proc = _start(tmp_path, bound="1")
    proc.send_signal(signal.SIGTERM)  # the work never finishes
    assert proc.wait(timeout=30) == 1
    assert (tmp_path / "cold").read_text() == "done"
