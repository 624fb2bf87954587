"""Deterministic idempotency keys from canonical JSON. Standard library only.

Rules (also in the README and :mod:`agentctl.trace.records`):

- the key covers ``[agent, unit_of_work, tool, args]`` and nothing else: not the time, not the
  attempt, not the release, so a retry of the same call for the same ticket gets the same key;
- ``args`` are canonicalised: object keys sorted, no insignificant whitespace, UTF-8 (no ``\\u``
  escapes for non-ASCII), tuples as lists, floats that are whole numbers as integers (``30.0`` and
  ``30`` are the same amount), ``Decimal`` as a number the same way, ``datetime`` as ISO 8601 in
  UTC, ``date`` as ISO 8601, ``UUID`` as its string; NaN/Infinity and other types are rejected
  with ``TypeError`` (a key must never depend on a ``repr``);
- key = ``"ik1-"`` + the first 32 hex digits (128 bits) of SHA-256 of the canonical JSON.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

KEY_PREFIX = "ik1-"


def canonical(value: Any) -> Any:
    """A JSON-compatible value where equal meanings have equal representations."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"cannot key a non-finite number: {value!r}")
        return int(value) if value.is_integer() else value
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise TypeError(f"cannot key a non-finite number: {value!r}")
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        for k in value:
            if not isinstance(k, str):
                raise TypeError(f"object keys must be strings, got {type(k).__name__}")
        return {k: canonical(value[k]) for k in sorted(value)}  # records show args sorted too
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise TypeError("cannot key a naive datetime: give it a timezone")
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Enum):
        return canonical(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return canonical({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    dump = getattr(value, "model_dump", None)  # pydantic v2 models, without importing pydantic
    if callable(dump):
        return canonical(dump(mode="json"))
    raise TypeError(f"cannot key a value of type {type(value).__name__}")


def canonical_json(value: Any) -> str:
    """The canonical JSON text of ``value``."""
    return json.dumps(
        canonical(value),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )


def idempotency_key(agent: str, unit_of_work: str, tool: str, args: dict[str, Any]) -> str:
    """The deterministic key of one tool call (see the module docstring for the rules)."""
    text = canonical_json([agent, unit_of_work, tool, args])
    return KEY_PREFIX + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
