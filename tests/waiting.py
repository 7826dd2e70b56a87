"""The one way a test waits for something another thread or process does.

`wait_for` polls a predicate until it returns something truthy and returns that value (so a test can
wait for a process and get it back), or returns the predicate's last answer when the deadline passes.
The deadline is generous on purpose: it only ends a test that would otherwise hang, it is never the
thing a test checks (tests assert behaviour, not how long it took).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

DEFAULT_TIMEOUT = 60.0


def wait_for(predicate: Callable[[], T], timeout: float = DEFAULT_TIMEOUT, step: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()
