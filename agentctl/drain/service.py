"""Drain as a library: plan (levers + queues), wait for in-flight work, divert, redrive.

The CLI calls these through :class:`agentctl.ops.Agentctl`; nothing here prints or prompts.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentctl.aws import Aws
from agentctl.clock import Clock
from agentctl.drain.discover import Intake, QueuePair, discover
from agentctl.drain.divert import ORIGIN_ATTRIBUTE, Message, MoveOptions, Mover, MoveResult
from agentctl.drain.ledger import MoveLedger
from agentctl.drain.queues import QueueCounts, counts
from agentctl.drain.wait import InFlight, WaitResult, wait_in_flight
from agentctl.engine.model import Outcome, Plan, RunResult
from agentctl.errors import AgentctlError, BadInputError, ExitCode
from agentctl.incidents.models import Event, Incident, JournalEntry, Operator
from agentctl.incidents.store import IncidentStore
from agentctl.spec.models import AgentSpec

QueueProgressFn = Callable[[str, MoveResult], None]


@dataclass
class DrainPlan:
    """The lever plan, plus what drain found about the queues before changing anything."""

    spec: AgentSpec
    plan: Plan
    intake: Intake
    divert: bool
    counts: dict[str, QueueCounts] = field(default_factory=dict)
    problems: list[AgentctlError] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.plan.to_dict(),
            "divert": self.divert,
            "queues": [_pair_dict(p, self.counts) for p in self.intake.queues],
            "problems": [p.message for p in self.problems],
        }


@dataclass
class QueueMove:
    queue: str
    review: str | None
    result: MoveResult | None = None
    error: AgentctlError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and (self.result is None or self.result.ok)

    def to_dict(self) -> dict[str, Any]:
        result = self.result.to_dict() if self.result else {}
        error = self.error.message if self.error else result.get("error")
        return {"queue": self.queue, "review_queue": self.review, **result, "error": error}


@dataclass
class DrainReport:
    plan: DrainPlan
    run: RunResult
    wait: WaitResult | None = None
    moves: list[QueueMove] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        found = [p.message for p in self.plan.problems]
        if self.wait is not None:
            found += [f"{k}: {v}" for k, v in self.wait.last.errors.items()]
        for move in self.moves:
            if move.error is not None:
                found.append(move.error.message)
            elif move.result is not None:
                if move.result.error is not None:
                    found.append(move.result.error.message)
                found += [
                    f"{move.queue}: message {mid} not moved: {why}"
                    for mid, why in sorted(move.result.failed.items())
                ]
        return found

    @property
    def moved(self) -> int:
        return sum(m.result.moved + m.result.finished for m in self.moves if m.result)

    @property
    def exit_code(self) -> ExitCode:
        code = self.run.exit_code
        if code in (ExitCode.OK, ExitCode.GATE_FAILED) and self.problems:
            worked = any(
                r.outcome in (Outcome.APPLIED, Outcome.PROPAGATING, Outcome.NOOP)
                for r in self.run.results
            ) or any(m.result is not None and m.result.moved for m in self.moves)
            return ExitCode.PARTIAL if worked or self.run.results else ExitCode.ERROR
        if code is ExitCode.ERROR and any(
            m.result is not None and m.result.moved for m in self.moves
        ):
            return ExitCode.PARTIAL
        if code is ExitCode.OK and self.wait is not None and not self.wait.done:
            return ExitCode.GATE_FAILED
        return code

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.run.to_dict(),
            "schema": "agentctl.drain/v1",
            "exit_code": int(self.exit_code),
            "divert": self.plan.divert,
            "queues": [_pair_dict(p, self.plan.counts) for p in self.plan.intake.queues],
            "wait": self.wait.to_dict() if self.wait else None,
            "moves": [m.to_dict() for m in self.moves],
            "moved": self.moved,
            "problems": self.problems,
        }


def _pair_dict(pair: QueuePair, before: dict[str, QueueCounts]) -> dict[str, Any]:
    name = pair.work.name if pair.work else pair.spec_name
    return {
        "queue": name,
        "review_queue": pair.review.name if pair.review else None,
        "before": before[name].to_dict() if name in before else None,
        "error": pair.work_error.message if pair.work_error else None,
    }


# -- planning ------------------------------------------------------------------------------------
class FindsOpen(Protocol):
    def find_open(self, agent: str) -> Incident | None: ...


def plan_drain(engine: Any, store: FindsOpen, spec: AgentSpec, *, divert: bool) -> DrainPlan:
    """Discover the intake, read every lever and queue; change nothing."""
    from agentctl.engine.phases import drain_steps

    intake = discover(engine.aws, spec)
    steps = drain_steps(spec, intake.mappings)
    if divert and not spec.queues:
        raise BadInputError(
            f"nothing to divert: {spec.name} declares no work queues",
            hint="declare `queues: [{name: ..., review_queue: ...}]` in the spec",
        )
    if not steps and not spec.queues:
        raise BadInputError(
            f"nothing to drain: {spec.name} declares no queues and no intake",
            hint="declare `queues:` and/or `intake:` (rules, schedules) in the spec",
        )
    plan = engine.plan(spec, "drain", steps, incident=store.find_open(spec.name))
    drain = DrainPlan(spec=spec, plan=plan, intake=intake, divert=divert)
    drain.problems += intake.errors
    for pair in intake.queues:
        if pair.work_error is not None:
            drain.problems.append(pair.work_error)
        elif pair.work is not None:
            try:
                drain.counts[pair.work.name] = counts(engine.aws, pair.work)
            except AgentctlError as exc:
                drain.problems.append(exc)
        if divert:
            if pair.review_error is not None:
                drain.problems.append(pair.review_error)
            elif pair.review is None:
                drain.problems.append(_no_review_queue(pair.spec_name))
    return drain


def _no_review_queue(queue: str) -> BadInputError:
    return BadInputError(
        f"{queue}: no review_queue in the spec: its messages were not diverted",
        hint=f"add `review_queue:` to the `{queue}` entry of `queues:` and re-run",
    )


# -- waiting -------------------------------------------------------------------------------------
def wait(
    aws: Aws,
    clock: Clock,
    drain: DrainPlan,
    *,
    timeout: float,
    interval: float = 2.0,
    on_poll: Callable[[InFlight], None] | None = None,
) -> WaitResult:
    queues = [p.work for p in drain.intake.queues if p.work is not None]
    return wait_in_flight(
        aws,
        clock,
        queues,
        list(drain.spec.functions),
        timeout=timeout,
        interval=interval,
        on_poll=on_poll,
    )


# -- moving --------------------------------------------------------------------------------------
def divert(
    aws: Aws,
    store: IncidentStore,
    ledger: MoveLedger,
    drain: DrainPlan,
    incident: Incident,
    operator: Operator,
    clock: Clock,
    *,
    options: MoveOptions | None = None,
    on_progress: QueueProgressFn | None = None,
    reason: str = "",
) -> list[QueueMove]:
    """Move every queued message of every work queue to its review queue (queues in parallel)."""
    journal = _Notes(store, incident, operator, clock, reason)
    if options is None:
        # The workers share one SQS client (a pool of 10 connections): split them over queues.
        queues = max(1, len(drain.intake.queues))
        options = MoveOptions(workers=max(1, MoveOptions().workers // queues))

    def one(pair: QueuePair) -> QueueMove:
        name = pair.work.name if pair.work else pair.spec_name
        review = pair.review.name if pair.review else None
        if pair.work is None:
            assert pair.work_error is not None
            return QueueMove(name, review, error=pair.work_error)
        if pair.review is None:
            return QueueMove(name, review, error=pair.review_error or _no_review_queue(name))
        journal.note(name, f"diverting {name} → {review}")
        mover = Mover(
            aws,
            ledger,
            pair.work,
            pair.review,
            incident_id=incident.id,
            options=options,
            on_progress=(lambda r: on_progress(name, r)) if on_progress else None,
        )
        movers.append(mover)
        result = mover.run()
        journal.note(name, _summary("diverted", result), after=result.to_dict())
        return QueueMove(name, review, result=result)

    movers: list[Mover] = []
    with ThreadPoolExecutor(max_workers=max(1, len(drain.intake.queues))) as pool:
        try:
            return list(pool.map(one, drain.intake.queues))
        except BaseException:  # Ctrl-C: every queue finishes its current batch and stops
            for mover in movers:
                mover.stop()
            raise


@dataclass
class RedrivePlan:
    agent: str
    pairs: list[QueuePair]
    counts: dict[str, QueueCounts] = field(default_factory=dict)  # by review queue name
    problems: list[AgentctlError] = field(default_factory=list)

    @property
    def waiting(self) -> int:
        return sum(c.queued for c in self.counts.values())


def plan_redrive(aws: Aws, spec: AgentSpec) -> RedrivePlan:
    from agentctl.drain.discover import resolve_queues

    pairs = [p for p in resolve_queues(aws, spec) if p.review is not None or p.review_error]
    plan = RedrivePlan(agent=spec.name, pairs=pairs)
    for pair in pairs:
        for error in (pair.work_error, pair.review_error):
            if error is not None:
                plan.problems.append(error)
        if pair.review is not None:
            try:
                plan.counts[pair.review.name] = counts(aws, pair.review)
            except AgentctlError as exc:
                plan.problems.append(exc)
    return plan


def redrive(
    aws: Aws,
    store: IncidentStore,
    ledger: MoveLedger,
    plan: RedrivePlan,
    incident: Incident,
    operator: Operator,
    clock: Clock,
    *,
    options: MoveOptions | None = None,
    reason: str = "",
) -> list[QueueMove]:
    """Move the messages drain diverted from each work queue back to it (others stay)."""
    import json

    journal = _Notes(store, incident, operator, clock, reason, phase="resume")
    moves = []
    for pair in plan.pairs:
        if pair.work is None or pair.review is None:
            error = pair.work_error or pair.review_error
            moves.append(QueueMove(pair.spec_name, None, error=error))
            continue
        work, review = pair.work, pair.review

        def ours(message: Message, work_arn: str = work.arn, review_arn: str = review.arn) -> bool:
            raw = message.get("MessageAttributes", {}).get(ORIGIN_ATTRIBUTE, {})
            try:
                if json.loads(raw.get("StringValue", "{}")).get("queue") == work_arn:
                    return True
            except (ValueError, AttributeError):
                pass
            return bool(ledger.moved_to(work_arn, review_arn, [message["MessageId"]]))

        journal.note(work.name, f"redriving {review.name} → {work.name}")
        result = Mover(
            aws,
            ledger,
            review,
            work,
            incident_id=incident.id,
            options=options,
            keep=ours,
            strip_origin=True,
        ).run()
        journal.note(work.name, _summary("redrove", result), after=result.to_dict())
        moves.append(QueueMove(review.name, work.name, result=result))
    return moves


def _summary(verb: str, result: MoveResult) -> str:
    text = f"{verb} {result.moved} message{'s' if result.moved != 1 else ''} {result.source} → "
    text += result.dest
    if result.finished:
        text += f"; finished {result.finished} sent by an interrupted run"
    if result.resent:
        text += f"; {result.resent} sent again after an interrupted send (possible duplicates)"
    if result.failed:
        text += f"; {len(result.failed)} failed"
    if result.error:
        text += f"; stopped: {result.error.message}"
    return text


class _Notes:
    """Journal notes for queue moves (they are not levers: nothing for ``resume`` to undo)."""

    def __init__(
        self,
        store: IncidentStore,
        incident: Incident,
        operator: Operator,
        clock: Clock,
        reason: str,
        phase: str = "drain",
    ) -> None:
        self.store, self.incident, self.operator = store, incident, operator
        self.clock, self.reason, self.phase = clock, reason, phase
        self.run_id = uuid.uuid4().hex[:12]

    def note(self, queue: str, message: str, after: dict[str, Any] | None = None) -> None:
        self.store.append(
            JournalEntry(
                incident_id=self.incident.id,
                run_id=self.run_id,
                at=self.clock.now(),
                operator=self.operator,
                phase=self.phase,
                event=Event.NOTE,
                step="divert" if self.phase == "drain" else "redrive",
                kind="sqs.move",
                target=f"sqs:{queue}",
                after=after,
                reason=self.reason,
                message=message,
            )
        )
