"""The signal a held hook call waits on: some E2E run changed on this replica.

A pre-rollout call under ``wait: hold`` waits for its run to end instead of answering "still
running" at once. Whatever stores a run's change on this replica (the CI runner, a CI webhook)
fires the signal, so the held call decides again at once; changes stored by another replica
reach it through the held call's own re-read every second. It lives apart from the CI runner
because a replica with role ``web`` holds calls but runs no CI runner.
"""

from __future__ import annotations

import asyncio
import contextlib


class RunChanges:
    """Wake every held call when a run changed; each waiter sees the next change only."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()

    async def wait(self, seconds: float) -> None:
        """Return at the next change, or after ``seconds``."""
        event = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)

    def notify(self) -> None:
        """A run changed: wake the calls waiting now (later waiters wait for the next one)."""
        self._changed.set()
        self._changed = asyncio.Event()
