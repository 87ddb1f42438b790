"""How calls to external systems (CI providers, chat, GitHub, Kubernetes) fail, classified
once for every client module, so background workers treat them alike:

* :class:`TransientError`: outage, 5xx, timeout, connection refused: retry with backoff;
* :class:`RateLimited`: 429 (or a provider's equivalent): wait ``retry_after`` seconds;
* :class:`PermanentError`: bad token, unknown channel/project/user, refused input: retrying
  will not help; record it where people can see it.
"""

from __future__ import annotations


class ProviderError(Exception):
    """A call to an external system did not work. ``status``: the HTTP status, if any."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TransientError(ProviderError):
    """Outage, 5xx, timeout, connection refused: retry later with backoff."""


class RateLimited(TransientError):
    """Told to slow down: wait ``retry_after`` seconds (None: not said)."""

    def __init__(self, message: str, *, retry_after: float | None, status: int | None = 429):
        super().__init__(message, status=status)
        self.retry_after = retry_after


class PermanentError(ProviderError):
    """Bad token, unknown target, refused input: retrying will not help."""
