"""Defects found in a user trial of `newswatch run` and `newswatch crawl`, each checked through the command
line with real processes: children that must not import from the folder `run` was started in, an interrupted
crawl that must not count as a success, and a normal stop that must not be logged as a crash.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from http.server import ThreadingHTTPServer

import psutil
import pytest

from newswatch.connection import EmbeddedRedis
from tests.daemon_support import DEADLINE, NEWSWATCH, Ok, alive, articles
from tests.waiting import wait_for


def _status(env: dict) -> dict:
    out = subprocess.run([NEWSWATCH, "status", "--json"], env=env, capture_output=True, text=True,
                         timeout=DEADLINE)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


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


def test_trial_07_interrupted_crawl_is_not_a_success(test_env, site, hold, crawls):
    """One SIGINT to `newswatch crawl`: Scrapy stops gracefully, but the pass is "interrupted" (exit 130,
    recorded as such), never "crawl ok"."""
    replica, _ = site
    held = hold(articles(replica))
    env = dict(test_env, NEWSWATCH_SITE_URL=replica.url, NEWSWATCH_DOWNLOAD_DELAY="0", NEWSWATCH_AUTOTHROTTLE="0",
               NEWSWATCH_RETRY_TIMES="0")
    crawl = crawls(env)
    assert wait_for(held.hit.is_set), "the crawl never reached an article page"
    crawl.send_signal(signal.SIGINT)
    held.release.set()  # the downloads in flight finish; Scrapy then closes with reason "shutdown"
    out, err = crawl.communicate(timeout=DEADLINE)
    assert crawl.returncode == 130, (out, err)
    assert "crawl ok" not in out and "crawl interrupted" in out, (out, err)
    assert "interrupted" in err, err
    assert _status(env)["runs"][0]["outcome"] == "interrupted"


def test_trial_07_15_revisit_stopped_by_run_is_interrupted_and_quiet(daemons, daemon_env, site, hold):
    """`run` stopped during a revisit: the revisit is recorded and logged as interrupted (not "revisit ok"),
    and the analysis process is not reported dead nor restarted (the stop's SIGTERM is not a crash)."""
    replica, _ = site
    held = hold(articles(replica))
    env = dict(daemon_env, NEWSWATCH_DOWNLOAD_TIMEOUT="120", NEWSWATCH_ANALYSIS_PROCESSES="1")
    daemon = daemons(env)
    assert wait_for(held.hit.is_set), daemon.log()
    daemon.signal(signal.SIGINT)
    # the revisit gets a few seconds to finish, then its process group is sent SIGTERM
    assert wait_for(lambda: "stopping the running revisit" in daemon.log()), daemon.log()
    held.release.set()
    assert daemon.wait() == 0, daemon.log()
    log = daemon.log()
    assert "revisit ok" not in log and "revisit interrupted" in log, log
    assert "analysis process died" not in log, log
    assert " ERROR " not in log, log
    assert _status(env)["runs"][0]["outcome"] == "interrupted"


@pytest.mark.parametrize("gap, status", [(0.5, 130), (1.5, 1)])
def test_trial_08_two_sigints_to_crawl_stop_what_it_owns(test_env, site, hold, crawls, tmp_path, gap, status):
    """Two SIGINTs to `newswatch crawl` with the embedded Redis it started: 0.5 s apart they are one request
    (a warm stop, exit 130), 1.5 s apart the second forces the stop (exit 1). Either way the embedded Redis
    (its own connections are no "other clients") and the analysis process are gone once it has exited."""
    replica, _ = site
    held = hold(articles(replica))
    env = {k: v for k, v in test_env.items() if k != "NEWSWATCH_REDIS_URL"}
    env.update(NEWSWATCH_SITE_URL=replica.url, NEWSWATCH_DOWNLOAD_DELAY="0", NEWSWATCH_AUTOTHROTTLE="0",
               NEWSWATCH_RETRY_TIMES="0", NEWSWATCH_DATA_DIR=str(tmp_path / "embedded"),
               NEWSWATCH_ANALYSIS_PROCESSES="1", NEWSWATCH_DOWNLOAD_TIMEOUT="120")
    crawl = crawls(env)
    assert wait_for(held.hit.is_set), "the crawl never reached an article page"
    children = psutil.Process(crawl.pid).children(recursive=True)
    redis_pid = EmbeddedRedis(tmp_path / "embedded").pid()
    assert redis_pid in {c.pid for c in children}, "this crawl started the embedded Redis"
    assert len(children) >= 2, "the embedded Redis and an analysis process"
    crawl.send_signal(signal.SIGINT)
    time.sleep(gap)  # how far apart the two signals are is the point of the test, not a wait
    crawl.send_signal(signal.SIGINT)
    if status == 130:
        held.release.set()  # a warm stop lets the pages in flight finish
    out, err = crawl.communicate(timeout=DEADLINE)
    assert crawl.returncode == status, (out, err)
    assert "crawl ok" not in out, out
    assert "leaving the embedded Redis running" not in err, err
    assert wait_for(lambda: not any(alive(c.pid) for c in children)), [c.pid for c in children if alive(c.pid)]


def test_trial_15_a_pass_outlasting_the_interval_is_one_info_line(daemons, daemon_env, site, hold):
    """NEWSWATCH_INTERVAL=2 and a pass held for several intervals: APScheduler's skips are expected; the log
    says so once, at info level, in newswatch's words, with no warning per interval."""
    replica, _ = site
    held = hold(articles(replica))
    daemon = daemons(dict(daemon_env, NEWSWATCH_DOWNLOAD_TIMEOUT="120"))
    assert wait_for(held.hit.is_set), daemon.log()
    time.sleep(5)  # the pass is held over two intervals or more (a hold, not a measurement)
    held.release.set()
    assert wait_for(lambda: "skipped while it ran" in daemon.log()), daemon.log()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0, daemon.log()
    log = daemon.log()
    assert "maximum number of running instances" not in log, log
    first = next(line for line in log.splitlines() if "skipped while it ran" in line)
    assert " INFO scheduler.overrun: " in first, first
