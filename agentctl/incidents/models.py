"""Incidents and their append-only journal."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class IncidentStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class Event(StrEnum):
    """What a journal entry records: ``intent`` is written *before* an AWS call, others after."""

    INTENT = "intent"  # about to apply; carries the before-state
    APPLIED = "applied"  # the change call returned; carries request ids
    VERIFIED = "verified"  # read back: the change is in place; carries the after-state
    UNVERIFIED = "unverified"  # read back: not (yet) in place
    FAILED = "failed"  # the change failed; carries the error
    NOOP = "noop"  # already in the wanted state: nothing changed
    SKIPPED = "skipped"  # not run (a dependency failed, or an abort)
    UNDO_INTENT = "undo_intent"  # about to restore; carries the before-state to restore
    UNDONE = "undone"  # restored and verified
    UNDO_FAILED = "undo_failed"
    NOTE = "note"  # free text (incident opened, joined, closed, ...)


@dataclass(frozen=True)
class Incident:
    id: str
    agent: str
    status: IncidentStatus
    opened_at: datetime
    opened_by: str
    reason: str = ""
    closed_at: datetime | None = None
    closed_by: str | None = None

    @staticmethod
    def day_prefix(at: datetime) -> str:
        """Ids of incidents opened on ``at``'s day start with this: ``INC-20261124-``."""
        return f"INC-{at:%Y%m%d}-"

    @classmethod
    def opened(cls, agent: str, number: int, *, at: datetime, by: str, reason: str) -> Incident:
        """The ``number``-th incident opened on ``at``'s day (every store numbers them so)."""
        return cls(
            id=f"{cls.day_prefix(at)}{number:04d}",
            agent=agent,
            status=IncidentStatus.OPEN,
            opened_at=at,
            opened_by=by,
            reason=reason,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "agent": self.agent,
            "status": self.status.value,
            "opened_at": self.opened_at.isoformat(),
            "opened_by": self.opened_by,
            "reason": self.reason,
            "closed_at": self.closed_at.isoformat() if self.closed_at else None,
            "closed_by": self.closed_by,
        }


@dataclass(frozen=True)
class Operator:
    """Who did it: the AWS identity (STS caller ARN) and the local user."""

    arn: str
    user: str

    def __str__(self) -> str:
        return f"{self.user} ({self.arn})"


@dataclass(frozen=True)
class JournalEntry:
    incident_id: str
    run_id: str
    at: datetime
    operator: Operator
    phase: str
    event: Event
    step: str = ""
    kind: str = ""
    target: str = ""
    inputs: dict[str, Any] | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    request_ids: list[str] = field(default_factory=list)
    error: str | None = None
    reason: str = ""
    message: str = ""
    duration_ms: float | None = None
    seq: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "incident_id": self.incident_id,
            "run_id": self.run_id,
            "at": self.at.isoformat(),
            "operator_arn": self.operator.arn,
            "operator_user": self.operator.user,
            "phase": self.phase,
            "event": self.event.value,
            "step": self.step,
            "kind": self.kind,
            "target": self.target,
            "inputs": self.inputs,
            "before": self.before,
            "after": self.after,
            "request_ids": list(self.request_ids),
            "error": self.error,
            "reason": self.reason,
            "message": self.message,
            "duration_ms": self.duration_ms,
        }
