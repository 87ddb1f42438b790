"""Gate types by name. A gate module registers its options class here; the policy model builds
its discriminated union from this registry, so adding a gate type touches no central switch."""

from __future__ import annotations

from typing import TypeVar

from puerta.domain.gates.base import GateOptions

_REGISTRY: dict[str, type[GateOptions]] = {}

OptionsT = TypeVar("OptionsT", bound=type[GateOptions])


def register(cls: OptionsT) -> OptionsT:
    """Class decorator: make a gate type available to policy files under its ``type`` literal."""
    type_field = cls.__pydantic_fields__["type"]
    name = type_field.default
    if not isinstance(name, str):
        raise TypeError(f"{cls.__name__}.type must default to its literal name")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"gate type {name!r} registered twice")
    _REGISTRY[name] = cls
    return cls


def gate_types() -> dict[str, type[GateOptions]]:
    """All registered gate types, by name."""
    return dict(_REGISTRY)
