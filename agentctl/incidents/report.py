"""An incident as a markdown report: for the incident channel, the ticket, the postmortem."""

from __future__ import annotations

from typing import Any

from agentctl.incidents.models import Event, Incident, JournalEntry
from agentctl.templates import render

_OUTCOME = {
    Event.VERIFIED: "applied, verified",
    Event.UNVERIFIED: "applied, not yet visible",
    Event.APPLIED: "applied",
    Event.FAILED: "failed",
    Event.UNDONE: "restored",
    Event.UNDO_FAILED: "restore failed",
}


def changes(entries: list[JournalEntry]) -> list[dict[str, Any]]:
    """One row per target and phase: first before-state, last after-state, last outcome."""
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for e in entries:
        if not e.target or e.event in (Event.NOTE, Event.NOOP, Event.SKIPPED):
            continue
        key = (e.phase, e.kind, e.target)
        row = rows.setdefault(
            key, {"target": e.target, "kind": e.kind, "before": None, "after": None, "outcome": ""}
        )
        if e.event in (Event.INTENT, Event.UNDO_INTENT) and row["before"] is None:
            row["before"] = e.after if e.event is Event.UNDO_INTENT else e.before
        if e.after is not None:
            row["after"] = e.after
        if e.event in _OUTCOME:
            row["outcome"] = _OUTCOME[e.event]
    return list(rows.values())


def markdown(incident: Incident, entries: list[JournalEntry]) -> str:
    return render(
        "incident.md.j2",
        incident=incident.to_dict(),
        changes=changes(entries),
        journal=[e.to_dict() for e in entries],
    )
