"""What every endpoint Flagger calls does first: read the payload (1 MiB at most, validated
like Flagger's own) and check the caller (the optional hook token, then the namespace).

Shared by ``/hooks/*`` and the flagger-loadtester compatible endpoints, so both follow the
same rules. Refusals are :class:`CallerRefused` with a 4xx status and a one-line reason.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from starlette.requests import Request

from puerta.api.auth import TokenRegistry
from puerta.domain.hooks import MAX_BODY_BYTES, FlaggerPayload, HookType, parse_payload
from puerta.errors import BadRequest

HOOK_TOKEN_MISSING = (
    "hook token missing or wrong: add ?token=... to the webhook URL or metadata.token"
)


class CallerRefused(Exception):
    """The caller may not call: answer ``status`` (401/403) with ``text``."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


async def read_payload(request: Request, hook: HookType) -> FlaggerPayload:
    """The validated payload; :class:`BadRequest` names the field (or the size)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BadRequest(f"body: larger than {MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BadRequest(f"body: larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return parse_payload(b"".join(chunks), hook)


def check_hook_caller(request: Request, payload: FlaggerPayload) -> None:
    """The hook token (when the policy sets one), then the namespace allow-list."""
    tokens: TokenRegistry = request.app.state.tokens
    if tokens.hook_token_required and not tokens.hook_token_ok(
        request.query_params.get("token") or payload.metadata.get("token")
    ):
        raise CallerRefused(401, HOOK_TOKEN_MISSING)
    check_namespace(request, payload)


def check_namespace(request: Request, payload: FlaggerPayload) -> None:
    """``hooks.namespaces``: which namespaces may call this Puerta at all."""
    allowed = request.app.state.policy.policy.hooks.namespaces
    if not any(fnmatchcase(payload.namespace, pattern) for pattern in allowed):
        raise CallerRefused(403, f"namespace {payload.namespace!r} may not call this Puerta")
