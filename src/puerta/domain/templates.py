"""Templates over a canary, used wherever the policy names something per rollout: a load
test's target URL, an E2E run's parameters, repository, branch or workflow.

Placeholders: ``{name}``, ``{namespace}``, ``{environment}``, ``{revision}`` (the rollout's
checksum; ``{checksum}`` is the same value under Flagger's name), ``{canary_url}``
(``http://NAME-canary.NAMESPACE``, the Service Flagger creates for the canary),
``{primary_url}`` (``http://NAME-primary.NAMESPACE``), ``{run_id}`` (unique per E2E run: echo it
in a GitHub workflow's ``run-name``), and ``{metadata.KEY}``, a value of the webhook's
metadata, with an optional default after ``|`` (``{metadata.suite|smoke}``), so each team can
pick its own suite from its Canary. A placeholder the policy misspells is an error when the
policy loads; a metadata key the webhook did not send (and that has no default) makes the gate
fail with a reason naming it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
FIXED = frozenset(
    {
        "name",
        "namespace",
        "environment",
        "revision",
        "checksum",
        "canary_url",
        "primary_url",
        "run_id",
    }
)


class MissingValue(KeyError):
    """A placeholder with no value: a metadata key the webhook did not send."""

    @property
    def key(self) -> str:
        return str(self.args[0])


def fields(template: str) -> list[str]:
    return _PLACEHOLDER.findall(template)


def check(template: str, *, allowed: Iterable[str] = FIXED) -> str:
    """Validate a template's placeholders (for the policy loader); returns it unchanged."""
    known = frozenset(allowed)
    for raw in fields(template):
        key = raw.split("|", 1)[0]
        if key in known:
            continue
        if key.startswith("metadata.") and len(key) > len("metadata."):
            continue
        names = ", ".join(f"{{{k}}}" for k in sorted(known))
        raise ValueError(f"unknown placeholder {{{raw}}}; use {names} or {{metadata.KEY}}")
    return template


def canary_values(
    *, name: str, namespace: str, environment: str | None, revision: str, run_id: str = ""
) -> dict[str, str]:
    """The fixed placeholders' values for one canary and rollout."""
    return {
        "name": name,
        "namespace": namespace,
        "environment": environment or "",
        "revision": revision,
        "checksum": revision,
        "canary_url": f"http://{name}-canary.{namespace}",
        "primary_url": f"http://{name}-primary.{namespace}",
        "run_id": run_id,
    }


def render(template: str, values: Mapping[str, str], metadata: Mapping[str, str]) -> str:
    """Fill the template. Raises :class:`MissingValue` naming a metadata key not sent."""

    def one(match: re.Match[str]) -> str:
        key, bar, default = match.group(1).partition("|")
        if key in values:
            return values[key]
        meta = key.removeprefix("metadata.")
        if key.startswith("metadata.") and meta in metadata:
            return metadata[meta]
        if bar:
            return default
        raise MissingValue(key)

    return _PLACEHOLDER.sub(one, template)
