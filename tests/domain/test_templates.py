"""Templates over a canary: what each placeholder becomes, and what the policy loader refuses."""

from __future__ import annotations

import pytest

from puerta.domain import templates


def values() -> dict[str, str]:
    return templates.canary_values(
        name="podinfo", namespace="test", environment="staging", revision="7d9f", run_id="r-1"
    )


def test_checksum_is_the_revision_under_flaggers_name() -> None:
    rendered = templates.render("{name}@{checksum}={revision}", values(), {})
    assert rendered == "podinfo@7d9f=7d9f"


def test_metadata_with_and_without_a_default() -> None:
    assert templates.render("{metadata.suite|smoke}", values(), {}) == "smoke"
    assert templates.render("{metadata.suite|smoke}", values(), {"suite": "full"}) == "full"
    with pytest.raises(templates.MissingValue) as missing:
        templates.render("{metadata.suite}", values(), {})
    assert missing.value.key == "metadata.suite"


def test_a_misspelt_placeholder_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match=r"unknown placeholder \{chekcsum\}"):
        templates.check("{chekcsum}")
    assert templates.check("{checksum}/{canary_url}") == "{checksum}/{canary_url}"
