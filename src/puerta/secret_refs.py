"""Read secrets named by the policy file (environment variable or file), failing loudly.

A secret that is named but missing stops Puerta from starting, with the path of the setting
that names it. Secret values are never logged or put in error messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from puerta.errors import ConfigError
from puerta.policy.secret_ref import SecretRef


def read_secret(ref: SecretRef, path: str, environ: Mapping[str, str]) -> str:
    """The secret's value; ``path`` names the setting in error messages."""
    if ref.token_env is not None:
        value = environ.get(ref.token_env, "")
        if not value.strip():
            raise ConfigError(
                [f"{path}.token_env: environment variable {ref.token_env} is not set or empty"]
            )
        return value.strip()
    assert ref.token_file is not None
    try:
        value = Path(ref.token_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            [f"{path}.token_file: cannot read {ref.token_file}: {exc.strerror or exc}"]
        ) from exc
    if not value:
        raise ConfigError([f"{path}.token_file: {ref.token_file} is empty"])
    return value
