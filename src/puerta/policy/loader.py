"""Load a policy file and report every problem with its path (and line) in the file.

Errors read like a compiler's, so an editor can jump to them::

    policy.yaml:14: environments.production.gates.confirm-rollout[1].timezone: unknown time
    zone 'Asia/Jerusalm'      (on one line)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from puerta.domain.gates import gate_types
from puerta.errors import ConfigError
from puerta.policy.errors import SUBPATH_MARK
from puerta.policy.model import CompiledPolicy, Policy
from puerta.yaml_locations import line_of, render_path


def load_policy(path: str | Path) -> CompiledPolicy:
    """Read, validate and compile a policy file; :class:`ConfigError` lists every problem."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{file}: cannot read policy file: {exc.strerror or exc}"]) from exc
    return parse_policy(text, source=str(file))


def parse_policy(text: str, source: str = "<policy>") -> CompiledPolicy:
    """Validate policy YAML text (``source`` names it in messages)."""
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{where}: invalid YAML: {problem}"]) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{source}: the policy must be a mapping at the top level"])
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, root, source)) from exc
    return policy.compile()


def _format_errors(exc: ValidationError, root: yaml.Node | None, source: str) -> list[str]:
    tags = set(gate_types())
    problems = []
    for error in exc.errors(include_url=False):
        loc = _clean_loc(list(error["loc"]), tags)
        message = _message(error)
        if message.startswith(SUBPATH_MARK):
            sub, _, message = message[1:].partition(SUBPATH_MARK)
            loc = loc + _split_subpath(sub)
        path = render_path(loc) or "(top level)"
        line = line_of(root, loc)
        where = f"{source}:{line}" if line else source
        problems.append(f"{where}: {path}: {message}")
    return problems


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "union_tag_not_found":
        return f"missing 'type'; one of: {', '.join(sorted(gate_types()))}"
    if kind == "union_tag_invalid":
        return (
            f"unknown gate type {error['input'].get('type')!r}; "
            f"one of: {', '.join(sorted(gate_types()))}"
        )
    if kind == "extra_forbidden":
        return "unknown field"
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    return message


def _clean_loc(loc: list[Any], tags: set[str]) -> list[Any]:
    """Drop pydantic's discriminator tags (``[1].manual.approvals`` -> ``[1].approvals``)."""
    cleaned: list[Any] = []
    for index, part in enumerate(loc):
        if isinstance(part, str) and part in tags and index > 0 and isinstance(loc[index - 1], int):
            continue
        if isinstance(part, str) and part.startswith("function-"):
            continue
        cleaned.append(part)
    return cleaned


def _split_subpath(sub: str) -> list[Any]:
    parts: list[Any] = []
    for piece in sub.split("."):
        name, _, rest = piece.partition("[")
        if name:
            parts.append(name)
        while rest:
            number, _, rest = rest.partition("]")
            parts.append(int(number))
            rest = rest.removeprefix("[")
    return parts
