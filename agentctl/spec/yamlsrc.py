"""YAML loading that remembers where every value came from.

PyYAML's composer gives nodes with marks; we build plain Python values from the node tree and a
map from field path (a tuple of keys and list indexes) to its 1-based line, so every validation
error can name file, line and field. Duplicate keys, which PyYAML would silently collapse, are
reported as problems.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path_ = tuple[str | int, ...]


@dataclass
class Located:
    """A parsed YAML document with a line for every field path."""

    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    duplicates: list[tuple[Path_, int]] = field(default_factory=list)

    def line_for(self, path: Path_) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        probe = tuple(path)
        while probe:
            if probe in self.lines:
                return self.lines[probe]
            probe = probe[:-1]
        return self.lines.get((), None)


class YamlSyntaxError(ValueError):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


def load_located(text: str) -> Located:
    """Parse one YAML document. Raises :class:`YamlSyntaxError` on malformed YAML."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or str(exc)
        raise YamlSyntaxError(f"invalid YAML: {problem}", line) from exc
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"invalid YAML: {exc}", None) from exc
    located = Located(data=None)
    if node is None:
        located.data = None
        return located
    located.lines[()] = node.start_mark.line + 1
    located.data = _build(node, (), located)
    return located


def _scalar(node: yaml.ScalarNode) -> Any:
    constructor = yaml.SafeLoader("")
    try:
        return constructor.construct_object(node, deep=True)
    finally:
        constructor.dispose()


def _build(node: yaml.Node, path: Path_, located: Located) -> Any:
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _build(key_node, path, located)
            if not isinstance(key, str | int | float | bool):
                key = str(key)
            child = (*path, key)
            if key in result:
                located.duplicates.append((child, key_node.start_mark.line + 1))
            located.lines[child] = key_node.start_mark.line + 1
            result[key] = _build(value_node, child, located)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            child = (*path, index)
            located.lines[child] = item.start_mark.line + 1
            items.append(_build(item, child, located))
        return items
    try:
        return _scalar(node)  # type: ignore[arg-type]
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        # an unknown tag (`!vault x`) or a value its tag cannot hold (`!!int abc`)
        problem = getattr(exc, "problem", None) or str(exc)
        raise YamlSyntaxError(f"invalid YAML: {problem}", node.start_mark.line + 1) from exc
