"""Signed, expiring sessions and one-shot messages, carried in cookies.

Signing in proves a Puerta token once; the cookie then carries only *who* (name, role), *when*
(issued-at) and a CSRF token, serialised as JSON and signed with HMAC-SHA256. The raw token is
never stored anywhere, so a leaked cookie expires and cannot be replayed against the API.

The key is random per process unless ``PUERTA_SESSION_SECRET`` is set: by default sessions end
when Puerta restarts and are valid only on the replica that issued them (several replicas behind
a load balancer need the same secret, or sticky sessions).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from puerta.api.auth import Principal, Role
from puerta.errors import ConfigError

SESSION_COOKIE = "puerta_session"
FLASH_COOKIE = "puerta_flash"
SECRET_ENV = "PUERTA_SESSION_SECRET"
MIN_SECRET_LENGTH = 32
SESSION_LIFETIME = timedelta(hours=8)
FLASH_LIFETIME = timedelta(minutes=1)
#: a session issued this far "in the future" is refused (clock skew between replicas)
_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class Session:
    """A signed-in person: the token's name and role, and the CSRF token of their forms."""

    name: str
    role: Role
    issued_at: datetime
    csrf: str

    @property
    def principal(self) -> Principal:
        return Principal(self.name, self.role)

    @property
    def expires_at(self) -> datetime:
        return self.issued_at + SESSION_LIFETIME


@dataclass(frozen=True)
class Flash:
    """A message for the next page (the result of a POST, shown after its redirect)."""

    message: str
    level: str = "ok"  # ok | error


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    """Signs and verifies cookie values. ``purpose`` is part of the MAC, so a flash cookie can
    never pass for a session cookie."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("a session key needs at least 32 bytes")
        self._key = key

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> SessionSigner:
        """The key from ``PUERTA_SESSION_SECRET`` (shared by replicas), else a random one."""
        secret = environ.get(SECRET_ENV)
        if secret is None or secret == "":
            return cls(secrets.token_bytes(32))
        if len(secret) < MIN_SECRET_LENGTH:
            raise ConfigError([f"{SECRET_ENV}: use at least {MIN_SECRET_LENGTH} random characters"])
        return cls(hashlib.sha256(b"puerta-dashboard-session\0" + secret.encode()).digest())

    def _mac(self, purpose: str, body: str) -> str:
        message = f"{purpose}\0{body}".encode()
        return _b64(hmac.new(self._key, message, hashlib.sha256).digest())

    def sign(self, purpose: str, data: Mapping[str, Any]) -> str:
        body = _b64(json.dumps(dict(data), separators=(",", ":"), sort_keys=True).encode())
        return f"{body}.{self._mac(purpose, body)}"

    def verify(self, purpose: str, value: str | None) -> dict[str, Any] | None:
        """The signed data, or None for anything tampered with, truncated or malformed."""
        if not value or value.count(".") != 1:
            return None
        body, mac = value.split(".")
        if not hmac.compare_digest(mac, self._mac(purpose, body)):
            return None
        try:
            data = json.loads(_unb64(body))
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    # ---- sessions ----------------------------------------------------------------------

    def issue(self, principal: Principal, now: datetime) -> tuple[Session, str]:
        """A new session (with a fresh CSRF token) and its cookie value."""
        session = Session(principal.name, principal.role, now, secrets.token_urlsafe(32))
        value = self.sign(
            "session",
            {
                "name": session.name,
                "role": session.role.name.lower(),
                "iat": int(now.timestamp()),
                "csrf": session.csrf,
            },
        )
        return session, value

    def session(self, value: str | None, now: datetime) -> Session | None:
        """The session in a cookie value, or None when it is invalid or expired."""
        data = self.verify("session", value)
        if data is None:
            return None
        try:
            role = Role[str(data["role"]).upper()]
            issued = datetime.fromtimestamp(int(data["iat"]), UTC)
            session = Session(str(data["name"]), role, issued, str(data["csrf"]))
        except (KeyError, TypeError, ValueError, OverflowError):
            return None
        if issued > now + _SKEW or now >= session.expires_at or not session.csrf:
            return None
        return session

    # ---- flash messages ----------------------------------------------------------------

    def flash(self, flash: Flash, now: datetime) -> str:
        return self.sign(
            "flash", {"m": flash.message, "l": flash.level, "iat": int(now.timestamp())}
        )

    def read_flash(self, value: str | None, now: datetime) -> Flash | None:
        data = self.verify("flash", value)
        if data is None:
            return None
        try:
            issued = datetime.fromtimestamp(int(data["iat"]), UTC)
            flash = Flash(str(data["m"]), "error" if data.get("l") == "error" else "ok")
        except (KeyError, TypeError, ValueError, OverflowError):
            return None
        if not issued - _SKEW <= now < issued + FLASH_LIFETIME:
            return None
        return flash
