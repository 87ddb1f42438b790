"""The policy file: environments, how canaries are matched to them, and their gates.

The names below are loaded on first use, so modules inside the policy package (``secret_ref``,
``errors``) can be imported by the sections' own modules (``ci/config.py``, ...) that the
policy model itself imports, without an import cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from puerta.policy.loader import load_policy, parse_policy
    from puerta.policy.model import CompiledPolicy, EnvironmentPolicy, Policy

__all__ = ["CompiledPolicy", "EnvironmentPolicy", "Policy", "load_policy", "parse_policy"]

_WHERE = {
    "load_policy": "puerta.policy.loader",
    "parse_policy": "puerta.policy.loader",
    "CompiledPolicy": "puerta.policy.model",
    "EnvironmentPolicy": "puerta.policy.model",
    "Policy": "puerta.policy.model",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'puerta.policy' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
