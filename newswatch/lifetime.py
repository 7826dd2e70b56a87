"""Processes that must not outlive their parent: the daemon's children, a crawl's analysis process.

Linux's parent-death signal: the kernel signals the child when its parent dies, even by SIGKILL, when no
clean-up of the parent's runs. Elsewhere there is no such signal and nothing is asked.
"""

from __future__ import annotations

import ctypes
import os
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int, sig: int) -> bool:
    """Ask for `sig` when this process's parent dies. False when the parent (pid `parent`) is already gone,
    before the request was in place: the caller should exit."""
    if not sys.platform.startswith("linux"):
        return True
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, int(sig))
    return os.getppid() == parent
