"""Child processes of the daemon: each in its own session, never outliving the daemon, stopped as a group.

Why a session of its own: a terminal's Ctrl-C (SIGINT to the foreground process group) must reach only the
daemon, which then decides how each child stops. Why a guard in front of each child: if the daemon dies,
even by SIGKILL, the kernel sends the child SIGTERM (Linux parent-death signal), so no alert worker or
crawl is left running without its parent. A crawl gets SIGKILL rather than SIGTERM: on SIGTERM Scrapy waits
for its downloads in flight (up to the download timeout), and an orphaned crawl must not overlap the next
leader's; each item is one XADD, so a kill never leaves one half-queued.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys

log = logging.getLogger(__name__)

KILL_GRACE = 10.0  # seconds between SIGTERM and SIGKILL of a child's process group

# Why not `python -m newswatch.cli`: -m and -c put the current folder first on sys.path, so a daemon
# started from a folder holding a `newswatch/` directory (the parent of a clone) would have every child
# import that instead and die at start. (`-P` does this from Python 3.11 on; 3.10 is still supported.)
_DROP_CWD = "import sys\nif sys.path and sys.path[0] == '':\n    del sys.path[0]\n"
_CLI = _DROP_CWD + "from newswatch.cli import main\nsys.exit(main())\n"

# Runs in front of every child: asks for a signal when the daemon dies, then execs the real command (the
# request survives exec).
_ORPHAN_GUARD = _DROP_CWD + (
    "import os\n"
    "from newswatch.lifetime import die_with_parent\n"
    "if not die_with_parent(int(sys.argv[2]), int(sys.argv[1])):\n"
    "    sys.exit(0)  # the daemon already died before the guard was in place\n"
    "os.execv(sys.argv[3], sys.argv[3:])\n"
)


def _command(args: list[str], death_signal: int) -> list[str]:
    command = [sys.executable, "-c", _CLI, *args]
    if sys.platform.startswith("linux"):
        return [sys.executable, "-c", _ORPHAN_GUARD, str(int(death_signal)), str(os.getpid()), *command]
    return command


def spawn(args: list[str], env: dict, *, death_signal: int = signal.SIGTERM, **kwargs) -> subprocess.Popen:
    """`newswatch <args>` as a child in its own session that gets `death_signal` if the daemon dies."""
    return subprocess.Popen(_command(args, death_signal), env=env, stdin=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True, **kwargs)


def stop_group(proc: subprocess.Popen, grace: float = KILL_GRACE, first: int = signal.SIGTERM) -> int | None:
    """Signal the child's whole process group, wait `grace`, then SIGKILL whatever is left of it."""
    for sig in (first, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            return proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            if sig == signal.SIGKILL:
                log.error("child %d did not exit after SIGKILL", proc.pid)
                return None
    return None
