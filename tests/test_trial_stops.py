"""Defects found in a user trial of `newswatch run` and `newswatch crawl`, each checked through the command
line with real processes: children that must not import from the folder `run` was started in, an interrupted
crawl that must not count as a success, and a normal stop that must not be logged as a crash.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

from tests.daemon_support import DEADLINE, Ok
from tests.waiting import wait_for

NEWSWATCH = str(Path(sys.executable).with_name("newswatch"))  # the installed console script


def _status(env: dict) -> dict:
    out = subprocess.run([NEWSWATCH, "status", "--json"], env=env, capture_output=True, text=True,
                         timeout=DEADLINE)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _hold_articles(replica) -> tuple[threading.Event, threading.Event]:
    """Every article page hangs until `release` is set; `hit` tells that the crawl is under way."""
    hit, release = threading.Event(), threading.Event()

    def hold(handler):
        hit.set()
        release.wait(60)
        return False  # then answer normally

    for article in list(replica.articles.values()):
        replica.faults[article.path] = hold
    return hit, release


def test_trial_06_run_from_a_folder_holding_a_newswatch_directory(daemons, daemon_env, tmp_path):
    """Started from the parent of a clone (a `newswatch/` folder there): revisits and the alert worker
    must import the installed newswatch, not that folder."""
    here = tmp_path / "parent-of-a-clone"
    (here / "newswatch").mkdir(parents=True)
    (here / "newswatch" / "__init__.py").write_text('raise ImportError("the decoy newswatch package was imported")\n')
    hook = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    hook.deliveries = []
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    env = dict(daemon_env, NEWSWATCH_WEBHOOK_URL=f"http://127.0.0.1:{hook.server_address[1]}/hook",
               NEWSWATCH_WEBHOOK_ALLOW_PRIVATE="1", NEWSWATCH_WEBHOOK_SECRET="whsec_dGVzdC1zZWNyZXQtMTIzNDU2")
    try:
        daemon = daemons(env, command=[NEWSWATCH, "run"], cwd=here)
        assert wait_for(lambda: daemon.log().count("revisit ok") >= 2), daemon.log()
        # the alert worker runs and delivers the articles the revisits queued
        assert wait_for(lambda: hook.deliveries), daemon.log()
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0, daemon.log()
        log = daemon.log()
        assert "decoy" not in log and "ImportError" not in log, log
        assert "alert worker exited" not in log and "revisit failed" not in log, log
    finally:
        hook.shutdown()
