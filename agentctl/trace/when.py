"""``--since`` / ``--until`` values: ISO 8601 (naive = UTC), a date, ``now``, or an age like
``90m``, ``2h``, ``1d`` (that long before now)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from agentctl.errors import BadInputError

_AGE = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)$")
_UNIT = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_when(text: str, now: datetime, *, option: str = "--since") -> datetime:
    value = text.strip()
    if value.lower() == "now":
        return now
    m = _AGE.match(value.lower())
    if m:
        return now - timedelta(**{_UNIT[m.group(2)]: float(m.group(1))})
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadInputError(
            f"{option} {text!r}: not a time",
            hint="use ISO 8601 (2026-11-24T01:00, UTC unless an offset is given) or an age "
            "like 90m, 2h, 1d",
        ) from None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
