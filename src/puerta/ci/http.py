"""HTTP plumbing shared by the provider modules: one request helper that maps failures to the
error classes of ``base`` (so every provider classifies 429, 5xx and timeouts the same way)."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from puerta.ci.base import PermanentError, RateLimited, TransientError


def retry_after(response: httpx.Response, now: datetime | None = None) -> float | None:
    """Seconds to wait from ``Retry-After`` (delta-seconds or an HTTP date), if given."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def flatten(value: Any) -> str:
    """Structured error details as one line: GitLab's ``{"base": ["Reference not found"],
    "ref": ["is invalid"]}`` -> ``Reference not found; ref: is invalid``."""
    if isinstance(value, dict):
        items = []
        for key, inner in value.items():
            text = flatten(inner)
            items.append(text if key == "base" else f"{key}: {text}")
        return "; ".join(items)
    if isinstance(value, list | tuple):
        return ", ".join(flatten(item) for item in value)
    return str(value)


def error_message(response: httpx.Response) -> str:
    """The provider's own message from an error body, shortened to one line."""
    text = ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("message", "error", "detail"):
            value = body.get(key)
            if isinstance(value, str) and value:
                text = value
                break
            if isinstance(value, dict | list) and value:
                text = flatten(value)
                break
    if not text:
        text = response.text
    text = " ".join(text.split())
    return text[:300] or response.reason_phrase


async def request(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    provider: str,
    **kwargs: Any,
) -> httpx.Response:
    """Send one request; return the response if it is 2xx/3xx, else raise.

    429 -> RateLimited (with Retry-After); 5xx, timeouts and connection errors ->
    TransientError; other 4xx -> PermanentError with the provider's message. Callers that
    give some 4xx a meaning of their own (GitHub's 422 on a retried flag, a 404 while a
    run is not visible yet) catch PermanentError and look at ``status``.
    """
    try:
        response = await client.request(method, url, **kwargs)
    except httpx.TimeoutException as exc:
        raise TransientError(f"{provider}: {method} {url} timed out") from exc
    except httpx.TransportError as exc:
        raise TransientError(f"{provider}: {method} {url} failed: {type(exc).__name__}") from exc
    if response.status_code == 429:
        raise RateLimited(f"{provider}: rate limited (HTTP 429)", retry_after=retry_after(response))
    if response.status_code >= 500:
        raise TransientError(
            f"{provider}: HTTP {response.status_code}: {error_message(response)}",
            status=response.status_code,
        )
    if response.status_code >= 400:
        raise PermanentError(
            f"{provider}: HTTP {response.status_code}: {error_message(response)}",
            status=response.status_code,
        )
    return response
