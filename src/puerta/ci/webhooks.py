"""Inbound CI webhooks: verify the signature, and read what the event says about a run.

Pure functions over the raw body and headers; the HTTP endpoint (``api/ci_webhooks.py``)
finds the run and stores the change.

* CircleCI signs with ``circleci-signature: v1=<hex>`` (a comma-separated list of versioned
  signatures): HMAC-SHA256 of the raw body keyed with the webhook's secret. Puerta checks the
  newest version it knows (v1) and nothing older, so a forged header cannot downgrade it.
  There is no timestamp; redeliveries are recognised by the body's ``id``.
* GitHub signs with ``X-Hub-Signature-256: sha256=<hex>`` (HMAC-SHA256 of the raw body);
  redeliveries carry the same ``X-GitHub-Delivery`` id.

Comparisons are constant-time. Secrets are never logged or echoed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from puerta.ci.base import RunState
from puerta.ci.config import CiConfig
from puerta.secret_refs import read_secret

#: signature versions CircleCI defines, newest first
_CIRCLECI_VERSIONS = ("v1",)


class BadSignature(Exception):
    """The signature is missing or does not match: answer 401 with this message."""


def read_webhook_secrets(config: CiConfig, environ: Mapping[str, str]) -> dict[str, str]:
    """Webhook secrets of the providers that have one (ConfigError names a missing one)."""
    return {
        name: read_secret(provider.webhook_secret, f"ci.providers.{name}.webhook_secret", environ)
        for name, provider in config.providers.items()
        if provider.webhook_secret is not None
    }


def _hmac_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_circleci(secret: str, body: bytes, header: str | None) -> None:
    if not header:
        raise BadSignature("missing circleci-signature header")
    signatures: dict[str, str] = {}
    for item in header.split(","):
        version, _, value = item.strip().partition("=")
        if version and value:
            signatures[version] = value
    for version in _CIRCLECI_VERSIONS:
        if version in signatures:
            if hmac.compare_digest(signatures[version].lower(), _hmac_hex(secret, body)):
                return
            raise BadSignature(f"circleci-signature {version} does not match the body")
    raise BadSignature("circleci-signature has no version Puerta can check (v1)")


def verify_github(secret: str, body: bytes, header: str | None) -> None:
    if not header:
        raise BadSignature("missing X-Hub-Signature-256 header")
    scheme, _, value = header.partition("=")
    if scheme != "sha256" or not value:
        raise BadSignature("X-Hub-Signature-256 must be sha256=<hex>")
    if not hmac.compare_digest(value.lower(), _hmac_hex(secret, body)):
        raise BadSignature("X-Hub-Signature-256 does not match the body")


@dataclass(frozen=True, slots=True)
class WorkflowCompleted:
    """A CircleCI ``workflow-completed`` event."""

    pipeline_id: str
    workflow: str
    status: str  # CircleCI's word
    state: RunState
    url: str | None

    @property
    def reason(self) -> str:
        link = f": {self.url}" if self.url else ""
        return f'workflow "{self.workflow}" {self.status}{link}'


_CIRCLECI_STATES = {
    "success": RunState.SUCCEEDED,
    "failed": RunState.FAILED,
    "error": RunState.FAILED,
    "unauthorized": RunState.FAILED,
    "not_run": RunState.FAILED,
    "canceled": RunState.CANCELED,
}


def parse_circleci_workflow_completed(body: Any) -> WorkflowCompleted | None:
    """The event's pipeline and workflow; None when the body is not such an event."""
    if not isinstance(body, dict) or body.get("type") != "workflow-completed":
        return None
    workflow = body.get("workflow")
    pipeline = body.get("pipeline")
    if not isinstance(workflow, dict) or not isinstance(pipeline, dict):
        return None
    status = str(workflow.get("status") or "")
    pipeline_id = pipeline.get("id")
    if not pipeline_id or status not in _CIRCLECI_STATES:
        return None
    url = workflow.get("url")
    return WorkflowCompleted(
        pipeline_id=str(pipeline_id),
        workflow=str(workflow.get("name") or "?"),
        status=status,
        state=_CIRCLECI_STATES[status],
        url=str(url) if url else None,
    )
