"""What each provider type needs from an ``e2e`` gate, checked when the policy loads (so a
missing workflow is a ``check-config`` error, not a failed rollout at 3 a.m.)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from puerta.domain.gates.e2e import E2EOptions

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
#: CircleCI's pipeline parameter limits (triggerPipelineRun in the v2 API description)
CIRCLECI_MAX_PARAMETERS = 100
GITHUB_MAX_INPUTS = 25


def e2e_target_problems(gate: E2EOptions, provider_type: str) -> Iterator[tuple[str, str]]:
    """(field, message) for each thing the provider type cannot work with."""
    templated = "{" in (gate.workflow or "")
    if provider_type == "github":
        if not gate.workflow:
            yield "workflow", "required for github: the workflow file (e2e.yml) or its id"
        if not gate.ref:
            yield "ref", "required for github: the branch or tag to run the workflow on"
        if "/" not in gate.project.strip("/") and "{" not in gate.project:
            yield "project", "github projects are owner/repo"
        if len(gate.parameters) > GITHUB_MAX_INPUTS:
            yield "parameters", f"github takes at most {GITHUB_MAX_INPUTS} workflow inputs"
        if not any("{run_id}" in value for value in gate.parameters.values()):
            yield (
                "parameters",
                "github needs an input carrying {run_id}, echoed in the workflow's run-name: "
                "Puerta finds the run by it when GitHub does not return the run's id, and "
                "after a lost trigger answer (docs/e2e.md)",
            )
    elif provider_type == "gitlab":
        if not gate.ref:
            yield "ref", "required for gitlab: the branch or tag to run the pipeline for"
        if gate.workflow is not None:
            yield "workflow", "not used by gitlab (the pipeline of `ref` runs)"
    elif provider_type == "circleci":
        if gate.workflow is not None and not templated and not _UUID.match(gate.workflow):
            yield "workflow", "for circleci: a pipeline definition id (a uuid), or leave it out"
        if gate.project.count("/") != 2 and "{" not in gate.project:
            yield "project", "circleci project slugs look like gh/org/repo"
        if len(gate.parameters) > CIRCLECI_MAX_PARAMETERS:
            yield "parameters", f"circleci takes at most {CIRCLECI_MAX_PARAMETERS} parameters"
    elif provider_type == "jenkins":
        if gate.workflow is not None:
            yield "workflow", "not used by jenkins (project is the job path)"
        if gate.ref is not None:
            yield "ref", "not used by jenkins (pass the branch as a parameter)"
