"""Flagger's webhook types and payload, validated as strictly as Flagger itself is.

Flagger's payload names no hook type, so the type comes from the URL. The payload is
``{name, namespace, phase, checksum, metadata}``; ``phase`` may be empty while a canary
initialises and future Flagger versions may add phases, so any string is accepted. ``metadata``
is a map of strings and may be absent. Kubernetes guarantees the shape of names, so those are
checked strictly: a malformed one cannot come from a real Flagger.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from puerta.errors import BadRequest
from puerta.text import check_text

MAX_BODY_BYTES = 1024 * 1024


class HookType(StrEnum):
    """The eight webhook types of a Flagger Canary's ``analysis.webhooks``."""

    CONFIRM_ROLLOUT = "confirm-rollout"
    PRE_ROLLOUT = "pre-rollout"
    ROLLOUT = "rollout"
    CONFIRM_TRAFFIC_INCREASE = "confirm-traffic-increase"
    CONFIRM_PROMOTION = "confirm-promotion"
    POST_ROLLOUT = "post-rollout"
    ROLLBACK = "rollback"
    EVENT = "event"

    @property
    def is_confirm(self) -> bool:
        """confirm-* hooks only wait on failure; they never count toward Flagger's threshold."""
        return self in CONFIRM_HOOKS

    @property
    def is_gating(self) -> bool:
        """Hooks whose answer lets the rollout go on (as opposed to rollback/record-only)."""
        return self in GATING_HOOKS

    @property
    def is_record_only(self) -> bool:
        """event and post-rollout always answer 200 once recorded."""
        return self in (HookType.EVENT, HookType.POST_ROLLOUT)


CONFIRM_HOOKS = frozenset(
    {HookType.CONFIRM_ROLLOUT, HookType.CONFIRM_TRAFFIC_INCREASE, HookType.CONFIRM_PROMOTION}
)
GATING_HOOKS = CONFIRM_HOOKS | {HookType.PRE_ROLLOUT, HookType.ROLLOUT}
HOOK_NAMES = ", ".join(h.value for h in HookType)


def parse_hook_type(text: str) -> HookType:
    """The hook type named in a URL, or :class:`NotFound`-style ``KeyError`` for unknown ones."""
    return HookType(text)


# Kubernetes object names: namespace is a DNS-1123 label, a Canary name a DNS-1123 subdomain.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

#: metadata keys that carry secrets: never stored or logged as sent.
SECRET_METADATA_KEYS = frozenset({"token"})
REDACTED = "***"


@dataclass(frozen=True, slots=True)
class FlaggerPayload:
    """One webhook call's body, validated."""

    name: str
    namespace: str
    phase: str = ""
    checksum: str = ""
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def canary(self) -> str:
        """``namespace/name``, the way people and the CLI name a canary."""
        return f"{self.namespace}/{self.name}"

    def redacted(self) -> dict[str, Any]:
        """The payload as stored and logged: secret metadata values replaced."""
        metadata = {
            key: (REDACTED if key in SECRET_METADATA_KEYS else value)
            for key, value in self.metadata.items()
        }
        body: dict[str, Any] = {
            "name": self.name,
            "namespace": self.namespace,
            "phase": self.phase,
            "checksum": self.checksum,
        }
        if metadata:
            body["metadata"] = metadata
        return body


def _string_field(body: dict[str, Any], key: str, *, required: bool) -> str:
    value = body.get(key)
    if value is None:
        if required:
            raise BadRequest(f"{key}: required")
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"{key}: must be a string, got {type(value).__name__}")
    return check_text(value, key)


def parse_payload(raw: bytes, hook: HookType) -> FlaggerPayload:
    """Validate a webhook body.

    Raises :class:`BadRequest` with a one-line reason that names the field.
    """
    if len(raw) > MAX_BODY_BYTES:
        raise BadRequest(f"body: larger than {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        raise BadRequest("body: empty; expected Flagger's JSON payload")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"body: not valid JSON ({exc})") from exc
    if not isinstance(body, dict):
        raise BadRequest(f"body: must be a JSON object, got {type(body).__name__}")

    name = _string_field(body, "name", required=True)
    namespace = _string_field(body, "namespace", required=True)
    if not name:
        raise BadRequest("name: must not be empty")
    if not namespace:
        raise BadRequest("namespace: must not be empty")
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        raise BadRequest(f"name: {name[:80]!r} is not a valid Kubernetes object name")
    if len(namespace) > 63 or not _DNS_LABEL.match(namespace):
        raise BadRequest(f"namespace: {namespace[:80]!r} is not a valid Kubernetes namespace")
    phase = _string_field(body, "phase", required=False)
    checksum = _string_field(body, "checksum", required=False)

    raw_metadata = body.get("metadata")
    metadata: dict[str, str] = {}
    if raw_metadata is not None:
        if not isinstance(raw_metadata, dict):
            raise BadRequest(
                f"metadata: must be an object of strings, got {type(raw_metadata).__name__}"
            )
        for key, value in raw_metadata.items():
            check_text(key, "metadata")
            if not isinstance(value, str):
                raise BadRequest(f"metadata.{key}: must be a string, got {type(value).__name__}")
            metadata[key] = check_text(value, f"metadata.{key}")

    if hook is HookType.EVENT:
        _check_event_metadata(metadata)
    return FlaggerPayload(name, namespace, phase, checksum, metadata)


def _check_event_metadata(metadata: dict[str, str]) -> None:
    """Flagger always sends eventMessage, eventType and a millisecond timestamp with events."""
    for key in ("eventMessage", "eventType", "timestamp"):
        if key not in metadata:
            raise BadRequest(f"metadata.{key}: required for event hooks")
    if not metadata["timestamp"].isdigit():
        raise BadRequest(
            f"metadata.timestamp: must be Unix milliseconds, got {metadata['timestamp'][:40]!r}"
        )
