"""Puerta's exception tree.

    PuertaError
    ├── ConfigError          the policy file or settings are invalid (refuse to start)
    ├── BadRequest           a caller sent something we can name as wrong (HTTP 400)
    ├── NotFound             no such canary / rollout (HTTP 404)
    ├── Conflict             the request is valid but the state does not allow it (HTTP 409)
    └── ProviderError        an external system failed; ``retryable`` says whether to try again

The domain raises these, never HTTP exceptions; the API maps them to status codes in one place.
"""

from __future__ import annotations


class PuertaError(Exception):
    """Base of every error Puerta raises on purpose."""


class ConfigError(PuertaError):
    """The configuration is invalid. ``problems`` holds one line per error, each with its path."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class BadRequest(PuertaError):
    """The caller sent input that is wrong in a way we can name."""


class NotFound(PuertaError):
    """The named object does not exist."""


class Conflict(PuertaError):
    """The request is well-formed but the current state does not allow it."""


class ProviderError(PuertaError):
    """An external system (CI, chat, GitHub, Kubernetes) failed."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        self.retryable = retryable
        super().__init__(message)
