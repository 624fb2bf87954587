"""``agentctl trace ACTION``: find one action (by action id or idempotency key) and the decision
chain that led to it: input → retrieved context → model calls → earlier tool calls → the action.

The lookup scans the action files of every day partition (or of ``since``/``until`` when given);
with DuckDB, lines are pre-filtered on the quoted id before any JSON is parsed. The chain is every
record of the action's trace (same ``trace_id``) up to and including the action, read from the
action's day and the day before (a unit of work that started before midnight).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from agentctl.errors import AgentctlError
from agentctl.trace.query import ACTION_KINDS, ALL_KINDS, duckdb_usable, scan_file, utc
from agentctl.trace.scan import ScanStats, loads_record, validate
from agentctl.trace.source import open_location

if TYPE_CHECKING:  # the models (pydantic) are imported by a lookup, not by every command
    from agentctl.trace.records import (
        ActionRecord,
        InputRecord,
        ModelCallRecord,
        RetrievalRecord,
    )

    AnyRecord = ActionRecord | ModelCallRecord | RetrievalRecord | InputRecord


class ActionNotFoundError(AgentctlError):
    pass


@dataclass
class Chain:
    """One action and the records of its trace that led to it, in time order."""

    action: ActionRecord
    records: list[AnyRecord]

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action.model_dump(mode="json"),
            "chain": [r.model_dump(mode="json") for r in self.records],
        }


def _use_duck(source: str, engine: str) -> bool:
    return engine == "duckdb" or (engine == "auto" and duckdb_usable(source))


def find_actions(
    source: str,
    ident: str,
    *,
    agent: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    stats: ScanStats | None = None,
    s3_client: Any | None = None,
    engine: str = "auto",
) -> list[ActionRecord]:
    """Actions whose ``action_id`` or ``idempotency_key`` is ``ident`` (a retried call shares
    its key: several actions can match), oldest first."""
    from agentctl.trace.records import ActionRecord

    stats = stats if stats is not None else ScanStats()
    location = open_location(source, s3_client=s3_client)
    files = location.files(
        utc(since) if since else None, utc(until) if until else None, ACTION_KINDS
    )
    found: list[ActionRecord] = []
    if _use_duck(source, engine):
        from agentctl.trace import duck

        def pred(shape: duck.Shape, params: dict[str, Any]) -> list[str]:
            # two alternatives, not one OR: each is a column filter Parquet can push down
            base = shape.eq("record_type", "rtype", "action", params)
            if agent:
                base += " AND " + shape.eq("agent", "agent", agent, params)
            return [
                f"{base} AND {shape.eq('action_id', 'ident', ident, params)}",
                f"{base} AND {shape.eq('idempotency_key', 'ident', ident, params)}",
            ]

        for line in duck.find_lines(
            location, files, pred, kinds="actions", stats=stats, needle=duck.needle_for(ident)
        ):
            # each line once (the alternatives are ORed); two records with one id (a span
            # exported twice) are both shown, as the python engine shows them
            record = _parsed(line, location.url, stats)
            if isinstance(record, ActionRecord):
                found.append(record)
    else:
        for file in files:
            for r in scan_file(location, file, stats):
                if (
                    isinstance(r, ActionRecord)
                    and ident in (r.action_id, r.idempotency_key)
                    and (agent is None or r.agent == agent)
                ):
                    found.append(r)
    found.sort(key=lambda r: (r.ts, r.action_id))
    if not found:
        raise ActionNotFoundError(
            f"no action with id or idempotency key {ident!r} in {location.url}",
            hint="list candidates with `agentctl actions AGENT --since ...`",
        )
    return found


def decision_chain(
    source: str,
    action: ActionRecord,
    *,
    stats: ScanStats | None = None,
    s3_client: Any | None = None,
    engine: str = "auto",
) -> Chain:
    """The records of ``action``'s trace up to and including it."""
    stats = stats if stats is not None else ScanStats()
    location = open_location(source, s3_client=s3_client)
    # clamped: an action in the first or last day a datetime holds has no day beyond
    first, last = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
    since = action.ts - min(timedelta(days=1), action.ts - first)
    until = action.ts + min(timedelta(seconds=1), last - action.ts)
    files = location.files(since, until, ALL_KINDS)
    records: list[AnyRecord] = []
    if _use_duck(source, engine):
        from agentctl.trace import duck

        def chain_pred(shape: duck.Shape, params: dict[str, Any]) -> str:
            params["until"] = action.ts
            return shape.eq("trace_id", "trace", action.trace_id, params) + " AND ts <= $until"

        for line in duck.find_lines(
            location,
            files,
            chain_pred,
            kinds="all",
            stats=stats,
            needle=duck.needle_for(action.trace_id),
        ):
            parsed = _parsed(line, location.url, stats)
            if parsed is not None:
                records.append(parsed)
    else:
        records = [
            r
            for f in files
            for r in scan_file(location, f, stats)
            if r.trace_id == action.trace_id and r.ts <= action.ts
        ]
    records = _dedupe(records)
    order = {"input": 0, "retrieval": 1, "model_call": 2, "action": 3}
    records.sort(key=lambda r: (r.ts, order[r.record_type]))
    return Chain(action, records)


def _parsed(line: str, where: str, stats: ScanStats) -> AnyRecord | None:
    """A line DuckDB picked out, as a record; one the models refuse is counted (as the python
    engine counts it), never an internal error that hides the rest of the chain."""
    try:
        data = loads_record(line)
    except ValueError as exc:
        stats.add_bad(where, 0, "not_json", str(exc))
        return None
    if not isinstance(data, dict):
        stats.add_bad(where, 0, "not_object", type(data).__name__)
        return None
    return validate(where, 0, data, stats)


def _dedupe(records: Sequence[AnyRecord]) -> list[AnyRecord]:
    """One record per span (a fan-out sink retried after a partial failure may write twice)."""
    seen: set[tuple[str, str]] = set()
    out: list[AnyRecord] = []
    for r in records:
        key = (r.trace_id, r.span_id)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out
