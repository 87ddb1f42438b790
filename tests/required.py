"""What a test does when something it needs is missing (a PostgreSQL server, Chromium, Helm,
an API description): skip with a message saying how to get it, or fail where the variable
``.ci/run`` sets (``PUERTA_REQUIRE_*=1``) says it must be there, so CI never passes by
skipping."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def skip_unless_required(message: str, variable: str) -> NoReturn:
    """Skip with ``message``; fail with it instead when ``variable`` is ``1``."""
    if os.environ.get(variable) == "1":
        pytest.fail(f"{message} ({variable}=1)")
    pytest.skip(message)
