"""Building records and audit directories for tests."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agentctl.sdk.layout import partition_of
from agentctl.trace.records import ActionRecord, Effect, to_json_dict

T0 = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
WINDOW = (T0, T0 + timedelta(hours=2))


def action(n: int, **over: Any) -> ActionRecord:
    fields: dict[str, Any] = {
        "agent": "refund-agent",
        "release_id": "rel-7",
        "trace_id": f"{n:032x}",
        "span_id": f"{n:016x}",
        "action_id": f"act-{n:06d}",
        "ts": T0 + timedelta(minutes=n),
        "unit_of_work": f"T-{n}",
        "tool": "issue_refund",
        "args": {"order_id": f"o-{n}", "amount": n * 5},
        "result": {"refund_id": f"re_{n}"},
        "status": "executed",
        "idempotency_key": f"ik1-{n:032x}",
        "effects": [
            Effect(
                system="payments",
                resource_type="refund",
                resource_id=f"re_{n}",
                operation="create",
                reversible=True,
                details={"amount": n * 5},
            )
        ],
    }
    fields.update(over)
    return ActionRecord(**fields)


def write(root: Path, records: list[Any], *, name: str = "actions-w1-000001.jsonl") -> list[Path]:
    """Write records into their day partitions (one file per day), gzip when name ends .gz."""
    by_day: dict[str, list[str]] = {}
    for r in records:
        line = r if isinstance(r, str) else json.dumps(to_json_dict(r))
        ts = r.ts if not isinstance(r, str) else T0
        by_day.setdefault(partition_of(ts), []).append(line)
    paths = []
    for part, lines in by_day.items():
        path = root / part / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = ("\n".join(lines) + "\n").encode()
        path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
        paths.append(path)
    return paths


def count(
    root: Path | str,
    where: str | None = None,
    *,
    tool: str | None = None,
    window: tuple[datetime, datetime] = WINDOW,
    stats: Any = None,
) -> int:
    """The DuckDB engine's `--count` of refund-agent's actions under ``root`` (bad lines in
    ``stats`` when given)."""
    from agentctl.trace.duck import count_actions
    from agentctl.trace.query import ACTION_KINDS
    from agentctl.trace.scan import ScanStats
    from agentctl.trace.source import open_location

    location = open_location(str(root))
    files = location.files(*window, ACTION_KINDS)
    return count_actions(
        location,
        files,
        "refund-agent",
        *window,
        where,
        tool,
        stats=stats if stats is not None else ScanStats(),
    )
