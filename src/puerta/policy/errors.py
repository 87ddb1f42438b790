"""How validators point below the object they validate.

pydantic locates a model validator's error at the model itself; a validator that knows the
exact field writes ``@sub.path@message`` and the loader moves ``sub.path`` into the location.
"""

from __future__ import annotations

SUBPATH_MARK = "@"


def located(subpath: str, message: str) -> str:
    """A validator message that names a path below the validated object."""
    return f"{SUBPATH_MARK}{subpath}{SUBPATH_MARK}{message}"
