"""Helpers shared by the dashboard's HTTP and browser tests (imported by name: ``tests/dashboard``
has no ``__init__.py``, like the rest of the suite, so ``conftest`` stays importable)."""

from __future__ import annotations

import base64
import html
import json
import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from conftest import EXAMPLE_POLICY, Puerta

JLM = ZoneInfo("Asia/Jerusalem")
OLD, NEW = "6d9d8b5c7f", "85d557f47b"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=JLM)  # type: ignore[misc]


def use_example_policy(puerta: Puerta) -> None:
    """The bundled policy: production has a work-hours window and a one-at-a-time train."""
    puerta.restart(EXAMPLE_POLICY.read_text())


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match is not None, "no CSRF field on the page"
    return match.group(1)


def sign_in(puerta: Puerta, token: str) -> str:
    """Sign in through the form (anyone signed in before is signed out); the CSRF token."""
    puerta.http.cookies.clear()
    response = puerta.http.post("/ui/login", data={"token": token}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return csrf_of(puerta.http.get("/ui/login").text)


def cookie_data(value: str) -> dict[str, Any]:
    """The (signed, not encrypted) JSON inside a session cookie."""
    body = value.split(".")[0]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return data


def text_of(page: str) -> str:
    """The page's text with tags removed and blanks collapsed, for readable assertions."""
    text = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))).strip()
    return re.sub(r"\(\s+", "(", re.sub(r"\s+([),.:;])", r"\1", text))


def section(page: str, pattern: str) -> str:
    """The text of the first piece of ``page`` matching ``pattern`` (across lines)."""
    match = re.search(pattern, page, re.S)
    assert match is not None, f"nothing matches {pattern!r}"
    return text_of(match.group(0))
