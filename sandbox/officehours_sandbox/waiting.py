"""Poll with a deadline instead of sleeping a fixed time (tests, the drill)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(condition: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    """`condition()`'s first true value, polled every 50 ms; AssertionError at `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
