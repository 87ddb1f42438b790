"""Waiting for what a background worker does: poll a condition, bounded in real time (the
workers run on their own schedule; tests never sleep a fixed time and hope)."""

from __future__ import annotations

import time
from collections.abc import Callable


def until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)
