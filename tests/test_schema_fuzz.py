"""Schemathesis over Puerta's own OpenAPI document: generated requests (valid and invalid) to
every operation never get a 5xx, and every answer matches the documented schema."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ADMIN, Puerta, serve_in_thread


def _schemathesis() -> list[str]:
    found = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    return [found]


def test_no_5xx_and_answers_match_the_schema(puerta: Puerta, tmp_path: Path) -> None:
    command = _schemathesis()
    with serve_in_thread(puerta.build_app()) as url:
        result = subprocess.run(
            [
                *command,
                "run",
                f"{url}/openapi.json",
                "--header",
                f"Authorization: Bearer {ADMIN}",
                "--checks",
                "not_a_server_error,response_schema_conformance",
                "--max-examples",
                "25",
                "--seed",
                "20261126",
                "--generation-deterministic",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
        )
    summary = result.stdout[-3000:]
    assert result.returncode == 0, summary
    assert " passed" in summary and "failed" not in summary.split("SUMMARY")[-1], summary
