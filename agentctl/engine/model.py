"""What the engine produces: plans, step results and run results."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from agentctl.errors import AgentctlError, ExitCode, GateFailedError
from agentctl.incidents.models import Incident, Operator
from agentctl.levers.base import State, Step
from agentctl.spec.models import StepSpec


class Mode(StrEnum):
    APPLY = "apply"
    UNDO = "undo"


class Outcome(StrEnum):
    APPLIED = "applied"  # changed and verified by reading back
    PROPAGATING = "propagating"  # changed; the read-back does not show it yet
    NOOP = "noop"  # already in the wanted state
    FAILED = "failed"
    SKIPPED = "skipped"
    PLANNED = "planned"  # dry run: would change


@dataclass
class PlannedStep:
    """A step with its before-state read and the change it would make (``None``: nothing)."""

    spec: StepSpec
    step: Step[Any, Any]
    mode: Mode = Mode.APPLY
    before: State | None = None  # the state read now
    restore_to: State | None = None  # undo: the journaled before-state to put back
    change: str | None = None
    error: AgentctlError | None = None
    depends_on: list[str] = field(default_factory=list)
    read_ms: float = 0.0

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def needs_change(self) -> bool:
        return self.error is None and self.change is not None


@dataclass
class Plan:
    agent: str
    phase: str
    operator: Operator
    started_at: datetime
    steps: list[PlannedStep]
    incident: Incident | None = None  # the open incident, if any (for undo plans: required)
    read_ms: float = 0.0
    read_at: float = 0.0  # the engine clock's monotonic time of the read

    @property
    def changes(self) -> list[PlannedStep]:
        return [s for s in self.steps if s.needs_change]

    @property
    def errors(self) -> list[PlannedStep]:
        return [s for s in self.steps if s.error is not None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "phase": self.phase,
            "operator": {"arn": self.operator.arn, "user": self.operator.user},
            "incident": self.incident.id if self.incident else None,
            "steps": [
                {
                    "name": s.name,
                    "action": s.spec.action,
                    "mode": s.mode.value,
                    "target": _safe_target(s),
                    "before": s.before.model_dump(mode="json") if s.before else None,
                    "restore_to": s.restore_to.model_dump(mode="json") if s.restore_to else None,
                    "change": s.change,
                    "error": s.error.message if s.error else None,
                }
                for s in self.steps
            ],
        }


def _safe_target(planned: PlannedStep) -> str:
    try:
        return planned.step.target
    except AgentctlError:
        return "?"


@dataclass
class StepResult:
    name: str
    action: str
    target: str
    mode: Mode
    outcome: Outcome
    change: str | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    error: str | None = None
    hint: str | None = None
    error_code: str | None = None
    gate_failure: bool = False
    outcome_unknown: bool = False  # timed out: the change may have happened
    request_ids: list[str] = field(default_factory=list)
    duration_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "action": self.action,
            "target": self.target,
            "mode": self.mode.value,
            "outcome": self.outcome.value,
            "change": self.change,
            "before": self.before,
            "after": self.after,
            "error": self.error,
            "hint": self.hint,
            "error_code": self.error_code,
            "outcome_unknown": self.outcome_unknown,
            "request_ids": self.request_ids,
            "duration_ms": round(self.duration_ms, 1),
        }


@dataclass
class RunResult:
    plan: Plan
    results: list[StepResult]
    incident: Incident | None
    incident_opened: bool = False
    total_ms: float = 0.0
    dry_run: bool = False

    @property
    def failed(self) -> list[StepResult]:
        return [r for r in self.results if r.outcome in (Outcome.FAILED, Outcome.SKIPPED)]

    @property
    def changed(self) -> list[StepResult]:
        return [r for r in self.results if r.outcome in (Outcome.APPLIED, Outcome.PROPAGATING)]

    @property
    def exit_code(self) -> ExitCode:
        failed = [r for r in self.results if r.outcome is Outcome.FAILED]
        if not failed and not any(r.outcome is Outcome.SKIPPED for r in self.results):
            return ExitCode.OK
        if failed and all(r.gate_failure for r in failed):
            return ExitCode.GATE_FAILED
        done = [
            r
            for r in self.results
            if r.outcome in (Outcome.APPLIED, Outcome.PROPAGATING, Outcome.PLANNED)
            or r.outcome_unknown
        ]
        noop = [r for r in self.results if r.outcome is Outcome.NOOP]
        return ExitCode.PARTIAL if (done or noop) else ExitCode.ERROR

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "agentctl.run/v1",
            "agent": self.plan.agent,
            "phase": self.plan.phase,
            "dry_run": self.dry_run,
            "incident": self.incident.id if self.incident else None,
            "incident_opened": self.incident_opened,
            "operator": {"arn": self.plan.operator.arn, "user": self.plan.operator.user},
            "exit_code": int(self.exit_code),
            "changed": len(self.changed),
            "failed": len(self.failed),
            "total_ms": round(self.total_ms, 1),
            "steps": [r.to_dict() for r in self.results],
        }


def is_gate_failure(error: BaseException) -> bool:
    return isinstance(error, GateFailedError)
