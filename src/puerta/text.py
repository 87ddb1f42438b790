"""Text Puerta will store: no NUL characters, and encodable as UTF-8.

PostgreSQL refuses both a NUL in a text value and an unpaired surrogate, and would answer the
write with an error, i.e. a 503 for a request that was simply malformed. Every string that
comes from outside and may reach the database is checked here first, so the caller gets a 400
naming the field instead. (Flagger itself never sends such text.)
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from puerta.errors import BadRequest


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored, or None."""
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (an unpaired surrogate)"
    return None


def check_text(value: str, field: str) -> str:
    """``value``, or :class:`BadRequest` naming ``field``."""
    problem = text_problem(value)
    if problem is not None:
        raise BadRequest(f"{field}: {problem}")
    return value


def _storable(value: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


#: a string field of a request body that may be stored
StorableStr = Annotated[str, AfterValidator(_storable)]
