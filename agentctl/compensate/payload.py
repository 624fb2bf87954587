"""Payload templates: written by the spec author, rendered in Jinja's sandbox, data as variables.

The action's data (arguments, result, effects) come from a possibly prompt-injected agent. They
are only ever *variables* of a template, never template source, and every ``{{ expression }}``
is emitted through ``json.dumps`` (the environment's ``finalize``), so a string like
``"}, "amount": 1e9, "x": {"`` or ``{{ 7 * 7 }}`` in an argument stays a JSON string. The
rendered text must parse as JSON; the parsed value is the payload.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from agentctl.errors import BadInputError


def _finalize(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


@functools.lru_cache(maxsize=1)
def environment() -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(
        undefined=StrictUndefined,
        finalize=_finalize,
        autoescape=False,
        keep_trailing_newline=False,
    )


@functools.lru_cache(maxsize=256)
def parse_template(source: str) -> Any:
    """Compile a template; ValueError on a syntax error (used by spec validation)."""
    try:
        return environment().from_string(source)
    except TemplateSyntaxError as exc:
        raise ValueError(f"template syntax error on line {exc.lineno}: {exc.message}") from exc


def render_json(source: str, variables: dict[str, Any]) -> Any:
    """Render ``source`` with ``variables`` and parse the result as JSON.

    Raises :class:`BadInputError` if a variable is missing or the output is not JSON.
    """
    try:
        template = parse_template(source)
    except ValueError as exc:
        raise BadInputError(str(exc)) from exc
    try:
        text = template.render(**variables)
    except Exception as exc:  # StrictUndefined, SecurityError, a filter failing on data
        raise BadInputError(f"payload template failed: {type(exc).__name__}: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInputError(
            f"payload template did not produce JSON ({exc.msg} at {exc.pos}): {text[:120]!r}",
            hint='every {{ ... }} is emitted as JSON: write `{{ "refund " ~ args.id }}`, '
            'not `"refund {{ args.id }}"`',
        ) from exc


def canonical(value: Any) -> str:
    """Canonical JSON: sorted keys, no whitespace, UTF-8 text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def payload_hash(value: Any) -> str:
    return hashlib.sha256(canonical(value).encode("utf-8")).hexdigest()


def lookup(data: dict[str, Any], path: str) -> Any:
    """``lookup(vars, "args.amount")``: follow a dotted path; None when absent."""
    current: Any = data
    for part in path.split("."):
        if isinstance(current, dict):
            current = current.get(part)
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    return current
