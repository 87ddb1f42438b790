"""Plain HTML form posts (``application/x-www-form-urlencoded``).

Parsed here with the standard library rather than Starlette's ``request.form()``, which needs
the optional ``python-multipart`` dependency; the dashboard posts nothing but short text fields,
so a size cap and a field cap are all the parsing it needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

from fastapi import Request

from puerta.dashboard.errors import PageError
from puerta.text import text_problem

MAX_FORM_BYTES = 16 * 1024
MAX_FIELDS = 20


@dataclass(frozen=True)
class Form:
    fields: dict[str, str]

    def get(self, name: str) -> str:
        """The field's value with surrounding blanks removed ("" when absent)."""
        return self.fields.get(name, "").strip()


async def read_form(request: Request) -> Form:
    """The posted fields (the last value wins for a repeated name); 400/413/415 otherwise.

    An empty body is an empty form, so a bare POST is refused for what it lacks (a session,
    a CSRF token: 403), not for its missing content type.
    """
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise PageError(413, "Form too large", f"forms are limited to {MAX_FORM_BYTES} bytes")
    if not body:
        return Form({})
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise PageError(415, "Unsupported form", "send the form as a plain HTML form post")
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            max_num_fields=MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise PageError(400, "Bad form", "the form could not be read") from exc
    for name, value in pairs:
        if text_problem(name) or text_problem(value):
            raise PageError(
                400, "Bad form", f"the field {name[:40]!r} holds text that cannot be stored"
            )
    return Form(dict(pairs))
