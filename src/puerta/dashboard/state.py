"""What the dashboard keeps per app: the session signer, the templates, the polling interval
and the roles the policy grants. Built once by :func:`puerta.dashboard.install`, from the
settings' environment (never at import time), and kept on ``app.state.dashboard``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fastapi import Request
from jinja2 import Environment

from puerta.api.auth import Role
from puerta.dashboard.render import make_templates
from puerta.dashboard.session import SessionSigner
from puerta.errors import ConfigError
from puerta.policy.model import CompiledPolicy

REFRESH_ENV = "PUERTA_UI_REFRESH_SECONDS"
DEFAULT_REFRESH_SECONDS = 5


@dataclass(frozen=True)
class DashboardState:
    signer: SessionSigner
    templates: Environment
    refresh_seconds: int
    #: name -> role of every token in the policy; a session whose name or role no longer
    #: matches (the policy changed) is not honoured
    roles: Mapping[str, Role]

    @classmethod
    def build(cls, policy: CompiledPolicy, environ: Mapping[str, str]) -> DashboardState:
        return cls(
            signer=SessionSigner.from_environ(environ),
            templates=make_templates(),
            refresh_seconds=_refresh_seconds(environ),
            roles={t.name: Role[t.role.upper()] for t in policy.policy.auth.tokens},
        )


def _refresh_seconds(environ: Mapping[str, str]) -> int:
    raw = environ.get(REFRESH_ENV, "").strip()
    if not raw:
        return DEFAULT_REFRESH_SECONDS
    if not raw.isdigit() or not 1 <= int(raw) <= 300:
        raise ConfigError([f"{REFRESH_ENV}: {raw!r} is not a whole number of seconds, 1-300"])
    return int(raw)


def dashboard_state(request: Request) -> DashboardState:
    state: DashboardState = request.app.state.dashboard
    return state
