"""Name a place in a YAML file the way people read it: ``spec.analysis.webhooks[2].type`` and
its line, for error messages about policy files and Canary manifests alike."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml


def render_path(loc: list[Any]) -> str:
    """``["a", "b", 2, "c"]`` -> ``a.b[2].c``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _children(node: yaml.Node, part: Any) -> Iterator[tuple[yaml.Node, yaml.Node]]:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                yield key, value
    elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        child = node.value[part]
        yield child, child


def line_of(root: yaml.Node | None, loc: list[Any]) -> int | None:
    """The 1-based line of the deepest node of ``loc`` present in the document."""
    if root is None:
        return None
    node, line = root, root.start_mark.line + 1
    for part in loc:
        found = next(_children(node, part), None)
        if found is None:
            break
        line = found[0].start_mark.line + 1
        node = found[1]
    return line
