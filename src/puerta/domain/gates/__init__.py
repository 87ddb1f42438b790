"""Gate types. Importing this package registers every built-in gate type."""

from puerta.domain.gates import basic, e2e, load, manual, window
from puerta.domain.gates.base import Gate, GateContext, GateOptions
from puerta.domain.gates.registry import gate_types

__all__ = [
    "Gate",
    "GateContext",
    "GateOptions",
    "basic",
    "e2e",
    "gate_types",
    "load",
    "manual",
    "window",
]
