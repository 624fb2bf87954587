"""``rollback``: move the release pointer back, then compensate the incident window exactly once.

One coordinated, journaled operation:

1. plan: the target release (``--to ID`` or the last known-good one), the pointer step (read
   now), the incident window, the action records in it, one ledger item per side effect;
2. (the CLI shows the plan and confirms)
3. execute: the pointer step through the engine (intent → applied → verified, in the incident),
   then a ``note`` with the compensation plan (and its inputs, so ``--resume`` can repeat it),
   the executor (per-item state lives in the ledger), and a ``note`` with the outcome.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agentctl.compensate.executor import ExecutionReport, Executor, ProgressFn
from agentctl.compensate.ledger import FINAL, Ledger, LedgerRow, LedgerStatus
from agentctl.compensate.planner import CompensationPlan, plan_compensations
from agentctl.compensate.source import load_actions
from agentctl.engine.model import Outcome, Plan, RunResult
from agentctl.errors import BadInputError, ExitCode, IncidentNotFoundError
from agentctl.incidents.models import Event, Incident, IncidentStatus, JournalEntry
from agentctl.releases.catalog import ReleaseCatalog
from agentctl.releases.model import Mark, Release
from agentctl.spec.loader import find_spec
from agentctl.spec.models import AgentSpec, StepSpec
from agentctl.trace.extract import ExtractStats

if TYPE_CHECKING:
    from agentctl.ops import Agentctl

PHASE = "rollback"
LAST_KNOWN_GOOD = "last-known-good"


@dataclass
class RollbackOptions:
    to: str | None = LAST_KNOWN_GOOD
    incident_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    where: str | None = None
    compensate: bool = True
    source: str | None = None
    resume: bool = False


@dataclass
class RollbackPlan:
    agent: str
    spec: AgentSpec
    options: RollbackOptions
    incident: Incident | None
    target: Release | None = None
    current_release: str | None = None
    pointer: Plan | None = None
    compensation: CompensationPlan | None = None
    window_note: str = ""
    already_done: int = 0
    new_mitigations: int = 0  # mitigation items not yet in the ledger
    bad_lines: int = 0
    derived: ExtractStats = field(default_factory=ExtractStats)  # effects from the spec

    @property
    def pointer_change(self) -> str | None:
        if self.pointer is None:
            return None
        changes = self.pointer.changes
        return changes[0].change if changes else None

    @property
    def to_send(self) -> int:
        if self.compensation is None:
            return 0
        return len(self.compensation.compensations) - self.already_done

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "agentctl.rollback-plan/v1",
            "agent": self.agent,
            "incident": self.incident.id if self.incident else None,
            "release": {
                "current": self.current_release,
                "target": self.target.id if self.target else None,
                "change": self.pointer_change,
                "error": (
                    self.pointer.errors[0].error.message  # type: ignore[union-attr]
                    if self.pointer and self.pointer.errors
                    else None
                ),
            },
            "window": self.window_note,
            "compensation": self.compensation.to_dict() if self.compensation else None,
            "already_compensated": self.already_done,
            "to_send": self.to_send,
            "bad_record_lines": self.bad_lines,
            "derived_effects": self.derived.to_dict(),
        }


@dataclass
class RollbackResult:
    plan: RollbackPlan
    pointer: RunResult | None = None
    execution: ExecutionReport | None = None
    incident: Incident | None = None
    dry_run: bool = False
    mitigations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exit_code(self) -> ExitCode:
        codes = []
        if self.pointer is not None:
            codes.append(self.pointer.exit_code)
        if self.execution is not None:
            codes.append(self.execution.exit_code)
        if self.plan.compensation is not None and self.plan.compensation.problems:
            codes.append(ExitCode.PARTIAL)
        bad = [c for c in codes if c is not ExitCode.OK]
        if not bad:
            return ExitCode.OK
        if len(bad) < len(codes) or any(c is ExitCode.PARTIAL for c in bad):
            return ExitCode.PARTIAL
        pointer_noop = self.pointer is not None and all(
            r.outcome is Outcome.NOOP for r in self.pointer.results
        )
        return ExitCode.PARTIAL if pointer_noop and len(codes) > 1 else bad[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "agentctl.rollback/v1",
            "agent": self.plan.agent,
            "dry_run": self.dry_run,
            "incident": self.incident.id if self.incident else None,
            "plan": self.plan.to_dict(),
            "release": self.pointer.to_dict()["steps"] if self.pointer else None,
            "compensation": self.execution.to_dict() if self.execution else None,
            "exit_code": int(self.exit_code),
        }


class Rollback:
    """The rollback operation over an :class:`agentctl.ops.Agentctl` (store, engine, AWS)."""

    def __init__(self, ac: Agentctl) -> None:
        self.ac = ac
        self._reads: Any = None  # while planning: the store to read (see plan)

    # -- planning ----------------------------------------------------------------------------
    def plan(self, agent: str, options: RollbackOptions) -> RollbackPlan:
        # a plan (and --dry-run) only reads: with no incident store yet it creates none
        in_memory = not self.ac.has_store()
        self._reads = self.ac.reading_store()
        try:
            return self._plan(agent, options)
        finally:
            if in_memory:  # the empty store in memory: nothing to keep
                self._reads.close_connection()
            self._reads = None

    def _store(self) -> Any:
        return self._reads if self._reads is not None else self.ac.store

    def _plan(self, agent: str, options: RollbackOptions) -> RollbackPlan:
        spec = self.ac.spec(agent)
        incident = self._incident(agent, options.incident_id)
        if options.resume:
            options = self._resumed(incident, options)
        plan = RollbackPlan(agent=agent, spec=spec, options=options, incident=incident)
        if spec.release is not None and options.to is not None:
            self._plan_pointer(plan)
        elif options.to not in (None, LAST_KNOWN_GOOD):
            raise BadInputError(
                f"{agent} declares no release pointer: cannot roll back to {options.to}",
                hint="add `release:` to the spec, or use --no-release to only compensate",
            )
        if options.compensate:
            since, until, note = self._window(plan)
            plan.window_note = note
            from agentctl.trace.scan import ScanStats

            stats = ScanStats()
            actions = load_actions(
                spec,
                self.ac.aws,
                since=since,
                until=until,
                where=options.where,
                source=options.source,
                stats=stats,
                spec_dir=find_spec(agent, self.ac.runbooks_dir).parent,
                derived=plan.derived,
            )
            plan.compensation = plan_compensations(
                spec,
                actions,
                since=since,
                until=until,
                where=options.where,
                incident_id=incident.id if incident else None,
            )
            plan.bad_lines = int(getattr(stats, "bad_total", 0))
            keys = [r.key for r in plan.compensation.compensations]
            plan.already_done = sum(1 for r in self.ledger().get_many(keys) if r.status in FINAL)
            mitigation_keys = [r.key for r in plan.compensation.mitigations]
            plan.new_mitigations = len(mitigation_keys) - len(
                self.ledger().get_many(mitigation_keys)
            )
        return plan

    def _incident(self, agent: str, incident_id: str | None) -> Incident | None:
        store = self._store()
        if incident_id is None:
            return store.find_open(agent)
        if not self.ac.has_store():
            raise IncidentNotFoundError(
                f"no incident {incident_id!r}: no incident was ever recorded here",
                hint="`agentctl incidents list` shows the known ones",
            )
        incident = store.get(incident_id)
        if incident.agent != agent:
            raise BadInputError(f"incident {incident_id} is about {incident.agent}, not {agent}")
        if incident.status is not IncidentStatus.OPEN:
            raise BadInputError(
                f"incident {incident_id} is closed",
                hint="rollback journals into an open incident; give the window with "
                "--since/--until instead",
            )
        return incident

    def _resumed(self, incident: Incident | None, options: RollbackOptions) -> RollbackOptions:
        if incident is None:
            raise BadInputError("--resume: no open incident to resume a rollback in")
        for entry in reversed(self._store().journal(incident.id)):
            if entry.phase == PHASE and entry.kind == "compensation.plan" and entry.inputs:
                saved = entry.inputs
                return replace(
                    options,
                    since=_dt(saved.get("since")),
                    until=_dt(saved.get("until")),
                    where=saved.get("where"),
                    source=saved.get("source") or options.source,
                    to=options.to,
                )
        raise BadInputError(
            f"--resume: incident {incident.id} has no rollback to resume",
            hint="run rollback with --since/--until (or --incident) first",
        )

    def _plan_pointer(self, plan: RollbackPlan) -> None:
        spec, options = plan.spec, plan.options
        pointer = spec.release
        assert pointer is not None
        current = self._current_release(spec)
        plan.current_release = current
        catalog = self.catalog()
        if options.to == LAST_KNOWN_GOOD:
            known = {r.id: r for r in catalog.list(spec.name)}
            active = known.get(current or "")
            if active is not None and active.mark is Mark.GOOD:
                target = active  # already on a good release: the pointer step is a no-op
            else:
                target = catalog.last_known_good(spec.name, excluding=current)
        else:
            assert options.to is not None
            target = catalog.get(spec.name, options.to)
        plan.target = target
        inputs: dict[str, Any] = {"release_id": target.id, "document": target.document()}
        if target.function_version:
            inputs["function_version"] = target.function_version
        step = StepSpec(name="release-pointer", action="release.pointer", inputs=inputs)
        plan.pointer = self.ac.engine.plan(spec, PHASE, [step], incident=plan.incident)

    def _current_release(self, spec: AgentSpec) -> str | None:
        """The release the pointer holds now (None: pointer absent or not a recorded one)."""
        from agentctl.aws import translate_error
        from agentctl.levers.release import release_of

        pointer = spec.release
        assert pointer is not None
        if pointer.parameter:
            ssm = self.ac.aws.client("ssm")
            try:
                value = ssm.get_parameter(Name=pointer.parameter)["Parameter"]["Value"]
            except ssm.exceptions.ParameterNotFound:
                return None
            except Exception as exc:
                raise translate_error(exc, "ssm:GetParameter") from exc
            return release_of(str(value))
        lam = self.ac.aws.client("lambda")
        try:
            alias = lam.get_alias(FunctionName=pointer.function, Name=pointer.alias)
        except lam.exceptions.ResourceNotFoundException:
            return None
        except Exception as exc:
            raise translate_error(exc, "lambda:GetAlias") from exc
        version = str(alias["FunctionVersion"])
        for release in self.catalog().list(spec.name):
            if release.function_version == version:
                return release.id
        return None

    def _window(self, plan: RollbackPlan) -> tuple[datetime, datetime, str]:
        options = plan.options
        now = self.ac.engine.clock.now()
        since, until = options.since, options.until
        notes = []
        if since is None:
            activated = self._activated_at(plan)
            if activated is None:
                raise BadInputError(
                    "no incident window: give --since (and --until)",
                    hint="or record releases so rollback knows when the bad one went live",
                )
            since = activated
            notes.append(f"since {plan.current_release} went live")
        if until is None:
            contained = self._contained_at(plan.incident)
            until = contained or now
            notes.append("until containment took effect" if contained else "until now")
        if until <= since:
            raise BadInputError(f"empty window: --until {until} is not after --since {since}")
        text = f"{since.isoformat(timespec='seconds')} → {until.isoformat(timespec='seconds')}"
        return since, until, text + (f" ({', '.join(notes)})" if notes else "")

    def _activated_at(self, plan: RollbackPlan) -> datetime | None:
        """When the current release went live: the earliest SSM version, in the unbroken run of
        versions carrying it at the end of the history."""
        pointer = plan.spec.release
        if pointer is None or not pointer.parameter or not plan.current_release:
            return None
        from agentctl.levers.release import release_of

        ssm = self.ac.aws.client("ssm")
        history: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"Name": pointer.parameter}
        while True:
            try:
                page = ssm.get_parameter_history(**kwargs)
            except Exception as exc:
                from agentctl.aws import translate_error

                raise translate_error(exc, "ssm:GetParameterHistory") from exc
            history.extend(page.get("Parameters", []))
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
        history.sort(key=lambda p: int(p["Version"]))
        activated = None
        for item in reversed(history):
            if release_of(str(item["Value"])) != plan.current_release:
                break
            activated = item["LastModifiedDate"]
        if activated is None:
            return None
        return activated if activated.tzinfo else activated.replace(tzinfo=UTC)

    def _contained_at(self, incident: Incident | None) -> datetime | None:
        if incident is None:
            return None
        for entry in self.ac.store.journal(incident.id):
            if entry.phase == "contain" and entry.event is Event.VERIFIED:
                return entry.at
        return None

    # -- executing ---------------------------------------------------------------------------
    def execute(
        self,
        plan: RollbackPlan,
        *,
        reason: str = "",
        progress: ProgressFn | None = None,
        workers: int = 16,
        lease_seconds: float = 120.0,
    ) -> RollbackResult:
        result = RollbackResult(plan=plan)
        store = self.ac.store
        incident = plan.incident
        if plan.pointer is not None:
            result.pointer = self.ac.engine.execute(plan.pointer, store, reason=reason)
            incident = result.pointer.incident
        if plan.compensation is None:
            result.incident = incident
            return result
        if incident is None:
            incident, _ = store.open_or_join(
                plan.agent, at=self.ac.engine.clock.now(), by=self.ac.engine.user, reason=reason
            )
        result.incident = incident
        comp = plan.compensation
        comp.compensations = [replace(r, incident_id=incident.id) for r in comp.compensations]
        comp.mitigations = [replace(r, incident_id=incident.id) for r in comp.mitigations]
        run_id = uuid.uuid4().hex[:12]
        self._note(
            incident,
            run_id,
            "compensation.plan",
            f"compensation plan: {comp.headline()} (window {plan.window_note}"
            + (f", where {plan.options.where}" if plan.options.where else "")
            + ")",
            reason,
            inputs={
                "since": comp.since.isoformat() if comp.since else None,
                "until": comp.until.isoformat() if comp.until else None,
                "where": plan.options.where,
                "source": plan.options.source,
                "compensations": len(comp.compensations),
                "mitigations": len(comp.mitigations),
            },
        )
        executor = Executor(
            self.ledger(),
            self.ac.aws,
            plan.spec,
            clock=self.ac.engine.clock,
            workers=workers,
            lease_seconds=lease_seconds,
        )
        report = executor.run(comp, progress)
        result.execution = report
        self._note(
            incident,
            run_id,
            "compensation.result",
            f"compensations: {report.completed} applied now, {report.already_done} already done,"
            f" {len(report.failed)} failed, {len(report.unknown)} unknown,"
            f" {len(report.held)} held by another executor, {len(report.conflicts)} changed;"
            f" {report.mitigations_recorded} mitigations recorded",
            reason,
            after=report.to_dict() | {"failed": len(report.failed), "unknown": len(report.unknown)},
            error="; ".join(f"{p.action_id}: {p.detail}" for p in report.problems[:20]) or None,
        )
        return result

    def _note(
        self,
        incident: Incident,
        run_id: str,
        kind: str,
        message: str,
        reason: str,
        **fields: Any,
    ) -> None:
        from agentctl.incidents.models import Operator

        self.ac.store.append(
            JournalEntry(
                incident_id=incident.id,
                run_id=run_id,
                at=self.ac.engine.clock.now(),
                operator=Operator(arn=self._arn(), user=self.ac.engine.user),
                phase=PHASE,
                event=Event.NOTE,
                kind=kind,
                target=f"agent:{incident.agent}",
                reason=reason,
                message=message,
                **fields,
            )
        )

    def _arn(self) -> str:
        try:
            return self.ac.aws.caller_arn()
        except Exception:
            return "unknown"

    # -- the ledger, item by item --------------------------------------------------------------
    def items(self, agent: str, status: str | None = None) -> list[LedgerRow]:
        self.ac.spec(agent)
        return [r for r in self.ledger().rows(agent) if status is None or r.status == status]

    def resolve(self, agent: str, ident: str, *, applied: bool) -> LedgerRow:
        """An operator's verdict on an ``unknown`` item (by action id or ledger key prefix)."""
        rows = [r for r in self.ledger().rows(agent) if r.action_id == ident]
        if not rows:
            rows = [r for r in self.ledger().rows(agent) if r.key.startswith(ident)]
        if len(rows) != 1:
            raise BadInputError(
                f"{'no' if not rows else 'more than one'} compensation of {agent} matches "
                f"{ident!r}",
                hint=f"`agentctl compensations list {agent} --status unknown` shows them",
            )
        row = rows[0]
        if row.status is not LedgerStatus.UNKNOWN and not row.dispatch_pending:
            raise BadInputError(
                f"{row.action_id} is {row.status.value}, not of unknown outcome: nothing to resolve"
            )
        resolved = self.ledger().resolve(row.key, applied=applied, by=self.ac.engine.user)
        if resolved.status is row.status:  # the conditional write did not apply
            raise BadInputError(
                f"{row.action_id} is still held by a running rollback (lease until "
                f"{row.lease_until}); resolve it after that"
            )
        return resolved

    # -- stores --------------------------------------------------------------------------------
    def ledger(self) -> Ledger:
        return ledger_for(self._store(), self.ac.engine.clock)

    def catalog(self) -> ReleaseCatalog:
        return catalog_for(self._store())


def ledger_for(store: Any, clock: Any) -> Ledger:
    from agentctl.incidents.sqlite import SqliteStore

    if isinstance(store, SqliteStore):
        from agentctl.compensate.sqlite_ledger import SqliteLedger

        return SqliteLedger(store, clock)
    make = getattr(store, "ledger", None)
    if make is None:
        raise BadInputError(f"the store {type(store).__name__} keeps no compensation ledger")
    return make(clock)


def catalog_for(store: Any) -> ReleaseCatalog:
    from agentctl.incidents.sqlite import SqliteStore

    if isinstance(store, SqliteStore):
        from agentctl.releases.catalog import SqliteCatalog

        return SqliteCatalog(store)
    make = getattr(store, "releases", None)
    if make is None:
        raise BadInputError(f"the store {type(store).__name__} keeps no release history")
    return make()


MITIGATION_COLUMNS = (
    "agent",
    "tool",
    "mitigation",
    "description",
    "details",
    "action_id",
    "action_ts",
    "idempotency_key",
    "incident_id",
)


def mitigations_csv(rows: list[Any]) -> str:
    """Mitigation items as CSV for the support team. Cells that a spreadsheet would run as a
    formula (agent data starting with ``=``, ``+``, ``-``, ``@``) are prefixed with ``'``."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(MITIGATION_COLUMNS)
    for row in rows:
        payload = json.loads(row.payload)
        details = payload.get("details")
        writer.writerow(
            [
                _cell(v)
                for v in (
                    row.agent,
                    row.tool,
                    payload.get("mitigation", ""),
                    payload.get("description", ""),
                    json.dumps(details, sort_keys=True) if details is not None else "",
                    row.action_id,
                    row.action_ts,
                    row.action_key,
                    row.incident_id or "",
                )
            ]
        )
    return out.getvalue()


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _dt(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None
