"""Bearer tokens by role for the admin API, and the optional shared token for hooks.

Tokens are read once at start (``secret_refs.py``) and kept only as SHA-256 digests, so a
token's value never sits in memory longer than start-up, and lookups do not compare secrets
byte by byte.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum

from fastapi import HTTPException, Request

from puerta.errors import ConfigError
from puerta.policy.model import Policy
from puerta.secret_refs import read_secret


class Role(IntEnum):
    VIEWER = 1
    APPROVER = 2
    ADMIN = 3


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class TokenRegistry:
    """Who a bearer token belongs to."""

    def __init__(self, principals: Mapping[bytes, Principal], hook_token: str | None) -> None:
        self._principals = dict(principals)
        self._hook_digest = _digest(hook_token) if hook_token else None

    @classmethod
    def from_policy(cls, policy: Policy, environ: Mapping[str, str]) -> TokenRegistry:
        principals: dict[bytes, Principal] = {}
        problems: list[str] = []
        for index, token in enumerate(policy.auth.tokens):
            try:
                value = read_secret(token, f"auth.tokens[{index}]", environ)
            except ConfigError as exc:
                problems.extend(exc.problems)
                continue
            digest = _digest(value)
            if digest in principals:
                problems.append(
                    f"auth.tokens[{index}]: same secret as token {principals[digest].name!r}"
                )
            principals[digest] = Principal(token.name, Role[token.role.upper()])
        hook_token = None
        if policy.hooks.token is not None:
            try:
                hook_token = read_secret(policy.hooks.token, "hooks.token", environ)
            except ConfigError as exc:
                problems.extend(exc.problems)
        if problems:
            raise ConfigError(problems)
        return cls(principals, hook_token)

    @property
    def hook_token_required(self) -> bool:
        return self._hook_digest is not None

    def hook_token_ok(self, presented: str | None) -> bool:
        if self._hook_digest is None:
            return True
        if not presented:
            return False
        return hmac.compare_digest(_digest(presented), self._hook_digest)

    def principal(self, token: str) -> Principal | None:
        return self._principals.get(_digest(token))


def bearer_principal(request: Request) -> Principal | None:
    """The caller named by ``Authorization: Bearer``; 401 for a malformed or unknown token."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            401,
            "Authorization header must be 'Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    registry: TokenRegistry = request.app.state.tokens
    principal = registry.principal(token.strip())
    if principal is None:
        raise HTTPException(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})
    return principal


def require(role: Role, request: Request) -> Principal:
    principal = bearer_principal(request)
    if principal is None:
        raise HTTPException(
            401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"}
        )
    if principal.role < role:
        raise HTTPException(
            403,
            f"token {principal.name!r} has role {principal.role.name.lower()}; "
            f"this needs {role.name.lower()}",
        )
    return principal
