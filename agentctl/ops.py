"""The library entry point the CLI (and tests, and drills) call: one object, one method each.

``Agentctl`` ties a runbooks directory, an incident store and AWS clients together and exposes
each command as plan / execute pairs, so a caller can show the plan and confirm in between.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentctl.aws import Aws
from agentctl.clock import Clock
from agentctl.engine.model import Plan, RunResult
from agentctl.engine.phases import ContainOptions, contain_steps, shadow_steps, status_steps
from agentctl.engine.runner import Engine, ProgressFn, dry_run_result
from agentctl.errors import AgentctlError, BadInputError
from agentctl.incidents.models import Incident, IncidentStatus
from agentctl.incidents.store import IncidentStore, open_store, sqlite_path
from agentctl.spec.loader import load_agent
from agentctl.spec.models import AgentSpec

if TYPE_CHECKING:
    from collections.abc import Callable

    from agentctl.compensate.rollback import RollbackOptions, RollbackPlan, RollbackResult
    from agentctl.releases.service import Releases

if TYPE_CHECKING:
    from agentctl.drain.divert import MoveOptions
    from agentctl.drain.service import DrainPlan, QueueMove, RedrivePlan
    from agentctl.drain.wait import WaitResult


class LeverState(StrEnum):
    LIVE = "live"
    CONTAINED = "contained"
    PARTIAL = "partial"  # some of the lever's tools are revoked (contain --tools), not all
    SHADOW = "shadow"
    DRAINED = "drained"  # an intake lever (event source mapping, rule, schedule) is disabled
    UNKNOWN = "unknown"


@dataclass
class LeverStatus:
    lever: str
    action: str
    target: str
    state: LeverState
    detail: str
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "lever": self.lever,
            "action": self.action,
            "target": self.target,
            "state": self.state.value,
            "detail": self.detail,
            "error": self.error,
        }


@dataclass
class StatusReport:
    agent: str
    levers: list[LeverStatus]
    incident: Incident | None
    read_ms: float = 0.0
    overall: str = field(init=False)

    def __post_init__(self) -> None:
        from agentctl.engine.phases import INTAKE_KINDS

        containment = [
            lv for lv in self.levers if lv.action != "shadow.flag" and lv.action not in INTAKE_KINDS
        ]
        contained = [lv for lv in containment if lv.state is LeverState.CONTAINED]
        partial = [lv for lv in containment if lv.state is LeverState.PARTIAL]
        if containment and len(contained) == len(containment):
            overall = "contained"
        elif contained or partial:
            overall = "partially contained"
        else:
            overall = "live"
        intake = [lv for lv in self.levers if lv.action in INTAKE_KINDS]
        drained = [lv for lv in intake if lv.state is LeverState.DRAINED]
        if intake and len(drained) == len(intake):
            overall += ", drained"
        elif drained:
            overall += ", partially drained"
        if any(lv.state is LeverState.SHADOW for lv in self.levers):
            overall += ", shadow"
        if any(lv.state is LeverState.UNKNOWN for lv in self.levers):
            overall += " (some levers unreadable)"
        self.overall = overall

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "agentctl.status/v1",
            "agent": self.agent,
            "overall": self.overall,
            "incident": self.incident.id if self.incident else None,
            "levers": [lv.to_dict() for lv in self.levers],
            "read_ms": round(self.read_ms, 1),
        }


class Agentctl:
    """agentctl as a library."""

    def __init__(
        self,
        aws: Aws,
        *,
        runbooks_dir: str | Path | None = None,
        store: IncidentStore | str | None = None,
        clock: Clock | None = None,
        user: str | None = None,
    ) -> None:
        self.aws = aws
        self.runbooks_dir = runbooks_dir
        self._store = store
        self._opened: IncidentStore | None = None  # a store opened here, closed by close()
        self.engine = Engine(aws, clock, user=user)

    @property
    def store(self) -> IncidentStore:
        if self._store is None or isinstance(self._store, str):
            self._store = open_store(self._store, aws=self.aws)
            self._opened = self._store
        return self._store

    def close(self, notify: Callable[[int], None] | None = None) -> None:
        """Close the store this object opened (one passed in is the caller's to close), once
        the steps that timed out but still run have written their journal entries (``notify(n)``
        first, when ``n`` are still running). Closing the SQLite connection checkpoints its
        write-ahead log into the database file."""
        try:
            self.engine.wait_for_stragglers(notify)
        finally:
            opened, self._opened = self._opened, None
            if opened is not None:
                opened.close_connection()

    def find_open(self, agent: str) -> Incident | None:
        """The agent's open incident. Reading creates nothing: with no SQLite file yet there is
        no incident, and a plan, a --dry-run or a status leaves the state directory alone."""
        return None if self._no_store_yet() else self.store.find_open(agent)

    def reading_store(self) -> IncidentStore:
        """The store for reads that must create nothing (a rollback plan, its --dry-run): the
        store, or, when its SQLite file does not exist yet, an empty one in memory (nothing was
        ever recorded, so every read of it is right)."""
        if self._no_store_yet():
            from agentctl.incidents.sqlite import SqliteStore

            return SqliteStore(Path(":memory:"))
        return self.store

    def has_store(self) -> bool:
        """False when the store is an SQLite file not created yet: nothing was ever recorded."""
        return not self._no_store_yet()

    def _no_store_yet(self) -> bool:
        """True when the store is an SQLite file that does not exist: nothing was ever recorded,
        and a read must not create it."""
        if self._store is None or isinstance(self._store, str):
            path = sqlite_path(self._store)
            return path is not None and not path.exists()
        return False

    def spec(self, agent: str) -> AgentSpec:
        return load_agent(agent, self.runbooks_dir)

    # -- contain / shadow / resume --------------------------------------------------------------
    def plan_contain(self, agent: str, options: ContainOptions | None = None) -> Plan:
        spec = self.spec(agent)
        steps = contain_steps(spec, options or ContainOptions())
        return self.engine.plan(spec, "contain", steps, incident=self.find_open(agent))

    def plan_shadow(self, agent: str, *, off: bool = False) -> Plan:
        spec = self.spec(agent)
        if off:
            incident = self.find_open(agent)
            if incident is not None:
                plan = self.engine.plan_undo(
                    spec, "shadow", incident, self.store, kinds={"shadow.flag"}
                )
                if plan.steps:
                    return plan
            return self.engine.plan(spec, "shadow", shadow_steps(spec, "live"))
        return self.engine.plan(
            spec, "shadow", shadow_steps(spec, "shadow"), incident=self.find_open(agent)
        )

    def plan_resume(self, agent: str) -> Plan:
        spec = self.spec(agent)
        incident = self.find_open(agent)
        if incident is None:
            raise BadInputError(
                f"{agent} has no open incident: nothing to resume",
                hint="`agentctl incidents list` shows past incidents",
            )
        return self.engine.plan_undo(spec, "resume", incident, self.store)

    def execute(
        self, plan: Plan, *, reason: str = "", on_result: ProgressFn | None = None
    ) -> RunResult:
        return self.engine.execute(plan, self.store, reason=reason, on_result=on_result)

    @staticmethod
    def dry_run(plan: Plan) -> RunResult:
        return dry_run_result(plan)

    # -- status ---------------------------------------------------------------------------------
    def status(self, agent: str) -> StatusReport:
        from agentctl.drain.discover import discover
        from agentctl.engine.phases import INTAKE_KINDS
        from agentctl.engine.runner import pending_undos

        spec = self.spec(agent)
        found = discover(self.aws, spec)  # event source mappings: no call without functions/queues
        plan = self.engine.plan(spec, "status", status_steps(spec, found.mappings))
        incident = self.find_open(agent)
        journal = self.store.journal(incident.id) if incident else []
        changed = {entries[0].target for entries in pending_undos(journal)}
        levers = [
            LeverStatus(
                "intake", "lambda.disable_event_source", "?", LeverState.UNKNOWN, "-", e.message
            )
            for e in found.errors
        ]
        for planned in plan.steps:
            step = planned.step
            if planned.error is not None:
                levers.append(
                    LeverStatus(
                        planned.name,
                        step.kind,
                        _target(planned),
                        LeverState.UNKNOWN,
                        "-",
                        planned.error.message,
                    )
                )
                continue
            applied = planned.change is None
            if step.kind == "shadow.flag":
                state = LeverState.SHADOW if applied else LeverState.LIVE
            elif step.kind in INTAKE_KINDS:
                state = LeverState.DRAINED if applied else LeverState.LIVE
            elif applied:
                state = LeverState.CONTAINED
            elif step.target in changed and step.is_partially_applied(planned.before):
                # agentctl revoked part of it; tools their owner disabled before any incident
                # do not count
                state = LeverState.PARTIAL
            else:
                state = LeverState.LIVE
            levers.append(
                LeverStatus(
                    planned.name, step.kind, step.target, state, step.describe_state(planned.before)
                )
            )
        return StatusReport(agent=agent, levers=levers, incident=incident, read_ms=plan.read_ms)

    # -- drain ----------------------------------------------------------------------------------
    def plan_drain(self, agent: str, *, divert: bool = False) -> DrainPlan:
        """Discover the intake and queues, read every lever; change nothing."""
        from agentctl.drain.service import plan_drain

        # the plan only looks for the open incident: no store is created by a --dry-run
        return plan_drain(self.engine, self, self.spec(agent), divert=divert)

    def wait_in_flight(
        self, drain: DrainPlan, *, timeout: float, interval: float = 2.0, on_poll: Any = None
    ) -> WaitResult:
        """Wait (through the engine's clock) until nothing is in flight, or ``timeout``."""
        from agentctl.drain.service import wait

        return wait(
            self.aws, self.engine.clock, drain, timeout=timeout, interval=interval, on_poll=on_poll
        )

    def divert(
        self,
        drain: DrainPlan,
        run: RunResult,
        *,
        options: MoveOptions | None = None,
        on_progress: Any = None,
        reason: str = "",
    ) -> list[QueueMove]:
        """Move every queued message of the work queues to their review queues, exactly once."""
        from agentctl.drain.ledger import ledger_for
        from agentctl.drain.service import divert

        assert run.incident is not None
        return divert(
            self.aws,
            self.store,
            ledger_for(self.store),
            drain,
            run.incident,
            run.plan.operator,
            self.engine.clock,
            options=options,
            on_progress=on_progress,
            reason=reason,
        )

    def plan_redrive(self, agent: str) -> RedrivePlan:
        from agentctl.drain.service import plan_redrive

        return plan_redrive(self.aws, self.spec(agent))

    def redrive(
        self,
        plan: RedrivePlan,
        run: RunResult,
        *,
        options: MoveOptions | None = None,
        reason: str = "",
    ) -> list[QueueMove]:
        """Move the messages drain diverted back from the review queues to the work queues."""
        from agentctl.drain.ledger import ledger_for
        from agentctl.drain.service import redrive

        assert run.incident is not None
        return redrive(
            self.aws,
            self.store,
            ledger_for(self.store),
            plan,
            run.incident,
            run.plan.operator,
            self.engine.clock,
            options=options,
            reason=reason,
        )

    # -- rollback and releases (agentctl.compensate.rollback, agentctl.releases) ----------------
    def plan_rollback(self, agent: str, options: RollbackOptions | None = None) -> RollbackPlan:
        from agentctl.compensate.rollback import Rollback, RollbackOptions

        return Rollback(self).plan(agent, options or RollbackOptions())

    def execute_rollback(self, plan: RollbackPlan, **kwargs: Any) -> RollbackResult:
        from agentctl.compensate.rollback import Rollback

        return Rollback(self).execute(plan, **kwargs)

    def releases(self) -> Releases:
        from agentctl.releases.service import Releases

        return Releases(self)

    # -- incidents ------------------------------------------------------------------------------
    def incidents(
        self, agent: str | None = None, status: IncidentStatus | None = None, limit: int = 100
    ) -> list[Incident]:
        if self._no_store_yet():
            return []
        return self.store.list_incidents(agent=agent, status=status, limit=limit)

    def close_incident(self, incident_id: str, *, by: str, force: bool = False) -> Incident:
        """Close an incident. Refused while it still has changed targets (``resume`` first):
        once closed, nothing would remember their before-states."""
        from agentctl.engine.runner import pending_undos

        incident = self.store.get(incident_id)
        pending = pending_undos(self.store.journal(incident_id))
        if pending and not force and incident.status is IncidentStatus.OPEN:
            targets = ", ".join(entries[0].target for entries in pending)
            raise BadInputError(
                f"{incident_id} still has {len(pending)} changed target(s): {targets}",
                hint=f"run `agentctl resume {incident.agent}` first, or pass --force to close "
                "it anyway (the targets stay as they are)",
            )
        return self.store.close(incident_id, at=self.engine.clock.now(), by=by)


def _target(planned: Any) -> str:
    try:
        return str(planned.step.target)
    except AgentctlError:
        return "?"
