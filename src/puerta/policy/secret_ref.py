"""A reference to a secret in the policy file: the environment variable or file holding it.

Its own module so every policy section that needs a secret (API tokens, the hook token, CI
providers' tokens and webhook secrets) can use it without importing the whole policy model.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


class SecretRef(BaseModel):
    """Where a secret lives: an environment variable or a file (e.g. a mounted Secret)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token_env: str | None = None
    token_file: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secret(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("token" in data or "secret" in data):
            raise ValueError(
                "secrets are never written in the policy file; use token_env (an environment "
                "variable) or token_file (a mounted file)"
            )
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.token_env is None) == (self.token_file is None):
            raise ValueError("give exactly one of token_env or token_file")
        return self
