"""Check CircleCI API v2 traffic against CircleCI's own OpenAPI description (openapi-core).

Both sides use it: the fake checks every request it receives and every answer it gives
(``FakeCircleCI(validator=...)``), and the tests check what the client puts on the wire
(httpx event hooks), so neither the provider nor its fake can drift from the real API unseen.

Three adjustments to the published document, about how it was generated, not what it says:

* It marks nullable fields with Swagger 2's ``x-nullable: true``, which OpenAPI 3.0 ignores, so
  the ``null`` that CircleCI really sends (``stopped_at`` of a running workflow, the last
  page's ``next_page_token``) would fail. We turn ``x-nullable`` into ``nullable``.
* ``{project-slug}`` spans three path segments (``gh/org/repo``, "the ``/`` may be URL-escaped")
  while openapi-core matches one segment per template variable; for validation only, such
  slugs are rejoined with ``%2F``. The newer ``{provider}/{organization}/{project}`` routes keep
  their three segments.
* ``page-token`` carries the deprecated ``allowEmptyValue``, for which openapi-core emits a
  DeprecationWarning on every paged call (an error under the suite's warning filter, and a
  500 inside the fake); it only concerns an empty ``page-token``, which nobody sends, so
  it is dropped.

Security is checked as published: ``Circle-Token`` is the spec's ``api_key_header`` scheme,
which openapi-core verifies by presence (not by value; the fake checks the value itself).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.responses.exceptions import ResponseNotFound
from werkzeug.datastructures import Headers, ImmutableMultiDict

#: where the published description lives; ``PUERTA_CIRCLECI_SPEC`` overrides
DEFAULT_SPEC = Path(__file__).parent.parent / "fixtures" / "specs" / "circleci-v2.json"
#: the spec's server, under which the fake's root-relative paths are checked
SERVER = "https://circleci.com"
API_ROOT = "/api/v2"

# ``/project/<a>/<b>/<c><rest>``: the rest decides whether the slug is one variable or three.
_SLUG_PATH = re.compile(r"^/project/([^/]+)/([^/]+)/([^/]+)(/.*)?$")
_THREE_SEGMENT_RESTS = frozenset({"/pipeline/run", "/settings"})


def spec_file() -> Path | None:
    """The spec to check against, or None where it is not available."""
    path = Path(os.environ.get("PUERTA_CIRCLECI_SPEC", str(DEFAULT_SPEC)))
    return path if path.is_file() else None


def _adjust(node: Any) -> None:
    """The two in-place rewrites the module docstring explains."""
    if isinstance(node, dict):
        if node.get("x-nullable") is True:
            node["nullable"] = True
        node.pop("allowEmptyValue", None)
        for value in node.values():
            _adjust(value)
    elif isinstance(node, list):
        for value in node:
            _adjust(value)


@lru_cache(maxsize=4)
def load(path: Path) -> SpecValidator:
    """Parse and check the document once per session (it is large)."""
    data = json.loads(path.read_text())
    _adjust(data)
    return SpecValidator(OpenAPI.from_dict(data))


def spec_path(path: str) -> str:
    """A root-relative API path as the spec's templates can match it (slug rejoined)."""
    match = _SLUG_PATH.match(path)
    if match is None:
        return path
    rest = match.group(4) or ""
    if rest in _THREE_SEGMENT_RESTS:
        return path
    return "/project/" + "%2F".join(match.group(1, 2, 3)) + rest


@dataclass(frozen=True)
class Call:
    """One request as sent on the wire: ``path`` root-relative and still percent-encoded."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    @classmethod
    def from_httpx(cls, request: httpx.Request, api_root: str = "") -> Call:
        raw = request.url.raw_path.decode("ascii")
        path, _, query = raw.partition("?")
        if api_root and path.startswith(api_root):
            path = path[len(api_root) :]
        return cls(
            method=request.method,
            path=path,
            query=tuple(parse_qsl(query, keep_blank_values=True)),
            headers=dict(request.headers),
            body=request.content,
        )

    def describe(self) -> str:
        return f"{self.method} {self.path}"


class _Request:
    """openapi-core's ``Request`` protocol over a :class:`Call`.

    ``parameters`` is one object for the request's life: openapi-core writes the resolved
    path parameters into it.
    """

    def __init__(self, call: Call) -> None:
        self.host_url = SERVER
        self.path = API_ROOT + spec_path(call.path)
        self.method = call.method.lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(list(call.query)),
            header=Headers(list(call.headers.items())),
        )
        self.body = call.body or None
        self.content_type = _content_type(call.headers)


@dataclass(frozen=True)
class _Response:
    """openapi-core's ``Response`` protocol."""

    status_code: int
    headers: Headers
    data: bytes | None

    @property
    def content_type(self) -> str:
        return _content_type(dict(self.headers.items()))


def _content_type(headers: Mapping[str, str]) -> str:
    for name, value in headers.items():
        if name.lower() == "content-type":
            return value.lower()
    return ""


def _explain(error: Exception) -> str:
    """One line: the error and, for schema errors, what exactly did not match."""
    text = f"{type(error).__name__}: {error}"
    cause = error.__cause__
    found = getattr(cause, "schema_errors", None) or getattr(error, "schema_errors", None)
    details: Iterable[Any] = found or ()
    messages = [str(getattr(detail, "message", detail)) for detail in details]
    if messages:
        text = f"{type(error).__name__}: " + "; ".join(messages)
    elif cause is not None:
        text += f" ({type(cause).__name__}: {cause})"
    return " ".join(text.split())[:500]


class SpecValidator:
    """Request and response checks against one loaded OpenAPI description."""

    def __init__(self, openapi: OpenAPI) -> None:
        self._openapi = openapi

    def request_problems(self, call: Call) -> list[str]:
        """What in this request the spec does not allow (empty: valid)."""
        errors = self._openapi.iter_request_errors(_Request(call))
        return [f"{call.describe()}: request: {_explain(error)}" for error in errors]

    def response_problems(
        self,
        call: Call,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        *,
        undeclared_ok: bool = False,
    ) -> list[str]:
        """What in this answer the spec does not allow.

        ``undeclared_ok``: a status the operation does not list is accepted (for answers a test
        provokes on purpose outside the spec: injected outages, CircleCI's undocumented 200
        "not triggered" on ``/pipeline/run``); a declared status is still checked.
        """
        response = _Response(status, Headers(list(headers.items())), body or None)
        problems = []
        for error in self._openapi.iter_response_errors(_Request(call), response):
            if undeclared_ok and isinstance(error, ResponseNotFound):
                continue
            problems.append(f"{call.describe()}: response {status}: {_explain(error)}")
        return problems
