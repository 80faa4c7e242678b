"""Waiting on a condition with a deadline: the one way tests, the simulator and the benchmarks synchronise."""
from __future__ import annotations

import time
from typing import Any, Callable


def wait_until(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.01,
               error: type[Exception] = TimeoutError) -> Any:
    """The condition's first truthy value, or `error` once `timeout` seconds have passed without one."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise error("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)
