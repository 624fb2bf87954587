"""Plan → (confirm) → apply concurrently → verify by reading back → journal.

The engine knows steps only through :class:`agentctl.levers.base.Step`. It never prints or
prompts: callers render the :class:`Plan`, ask for confirmation and render the
:class:`RunResult`.

Journal protocol, per step that changes something: ``intent`` (with the before-state) is
committed *before* the AWS call, ``applied`` (request ids) after it, then ``verified`` or
``unverified`` after the read-back. A ``kill -9`` at any point therefore leaves either nothing
for that step or an ``intent`` that ``resume`` honours.
"""

from __future__ import annotations

import getpass
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime
from typing import Any

from agentctl.aws import Aws, translate_error
from agentctl.clock import Clock, PollTimeout, SystemClock, poll_until
from agentctl.engine.model import (
    Mode,
    Outcome,
    Plan,
    PlannedStep,
    RunResult,
    StepResult,
    is_gate_failure,
)
from agentctl.errors import AgentctlError, AwsUnavailableError, BadInputError
from agentctl.incidents.models import Event, Incident, JournalEntry, Operator
from agentctl.incidents.store import IncidentStore
from agentctl.levers import registry
from agentctl.levers.base import Step, StepContext
from agentctl.spec.models import AgentSpec, OnFailure, StepSpec

ProgressFn = Callable[[StepResult], None]


class Engine:
    """Runs runbook steps against AWS. Clients, clock and user are passed in."""

    def __init__(
        self,
        aws: Aws,
        clock: Clock | None = None,
        *,
        user: str | None = None,
        max_workers: int = 16,
        verify_timeout: float = 10.0,
        verify_interval: float = 0.5,
        refresh_after: float = 2.0,
    ) -> None:
        self.aws = aws
        self.clock = clock or SystemClock()
        self.user = user or _local_user()
        self.max_workers = max_workers
        self.verify_timeout = verify_timeout
        self.verify_interval = verify_interval
        self.refresh_after = refresh_after
        # pools left running a step that timed out, with those steps: their late journal
        # entries are still written
        self._abandoned: list[tuple[ThreadPoolExecutor, list[Future[StepResult]]]] = []

    def wait_for_stragglers(self, notify: Callable[[int], None] | None = None) -> None:
        """Wait for the steps that timed out but are still running (their AWS calls end on
        botocore's own timeouts): their journal entries say what really happened, and the store
        must stay open until they are written. ``notify(n)`` is called first when ``n`` steps
        are still running, so a caller can say why it waits."""
        abandoned, self._abandoned = self._abandoned, []
        try:
            running = sum(not f.done() for _, futures in abandoned for f in futures)
            if running and notify is not None:
                notify(running)
        finally:  # a notify that fails (a closed stderr) must not skip the wait
            for pool, _ in abandoned:
                pool.shutdown(wait=True)

    # -- building ----------------------------------------------------------------------------
    def context(self, spec: AgentSpec, started_at: datetime | None = None) -> StepContext:
        return StepContext(
            aws=self.aws, spec=spec, clock=self.clock, started_at=started_at or self.clock.now()
        )

    def build(self, ctx: StepContext, step_specs: Iterable[StepSpec]) -> list[PlannedStep]:
        """Instantiate steps; resolve dependencies (checks wait for every earlier step)."""
        planned: list[PlannedStep] = []
        for spec in step_specs:
            step = make_step(ctx, spec)
            if spec.depends_on is not None:
                deps = list(spec.depends_on)
            elif step.is_check:
                deps = [p.name for p in planned]
            else:
                deps = []
            planned.append(PlannedStep(spec=spec, step=step, depends_on=deps))
        return planned

    # -- planning ----------------------------------------------------------------------------
    def plan(
        self,
        spec: AgentSpec,
        phase: str,
        step_specs: Iterable[StepSpec],
        *,
        incident: Incident | None = None,
    ) -> Plan:
        """Read every step's before-state (concurrently) and say what would change."""
        ctx = self.context(spec)
        steps = self.build(ctx, step_specs)
        return self._read(spec.name, phase, ctx, steps, incident)

    def plan_undo(
        self,
        spec: AgentSpec,
        phase: str,
        incident: Incident,
        store: IncidentStore,
        *,
        kinds: set[str] | None = None,
    ) -> Plan:
        """Plan to restore every target changed in ``incident`` (optionally only ``kinds``)
        to the before-state journaled by its first change."""
        ctx = self.context(spec)
        steps: list[PlannedStep] = []
        names: set[str] = set()
        for entries in pending_undos(store.journal(incident.id), kinds):
            first = entries[0]
            if registry.get(first.kind) is None:
                continue
            name = first.step
            if name in names:  # the same step name reached two targets (e.g. the spec changed)
                name = next(
                    f"{first.step}-{n}"
                    for n in range(2, 10_000)
                    if f"{first.step}-{n}" not in names
                )
            names.add(name)
            step_spec = StepSpec(name=name, action=first.kind, inputs=_merged_inputs(entries))
            step = make_step(ctx, step_spec)
            if not step.reversible:
                continue
            befores = [step.state_from_json(e.before or {}) for e in entries]
            restore_to = step.merge_before(befores)
            step.scope_to(restore_to)
            steps.append(
                PlannedStep(
                    spec=step_spec,
                    step=step,
                    mode=Mode.UNDO,
                    restore_to=restore_to,
                )
            )
        return self._read(spec.name, phase, ctx, steps, incident)

    def _read(
        self,
        agent: str,
        phase: str,
        ctx: StepContext,
        steps: list[PlannedStep],
        incident: Incident | None,
    ) -> Plan:
        started = time.perf_counter()
        pool = ThreadPoolExecutor(max_workers=self._workers(steps) + 1)
        try:
            who: Future[str] = pool.submit(self.aws.caller_arn)
            futures = [pool.submit(_read_one, p) for p in steps]
            for future in futures:
                future.result()
            try:
                arn = who.result()
            except AwsUnavailableError:
                raise
            except AgentctlError:
                arn = "unknown"
        finally:
            pool.shutdown(wait=True)
        bad = [p.error for p in steps if isinstance(p.error, BadInputError)]
        if bad:
            raise bad[0]
        unreachable = [p.error for p in steps if isinstance(p.error, AwsUnavailableError)]
        if unreachable:
            raise unreachable[0]
        return Plan(
            agent=agent,
            phase=phase,
            operator=Operator(arn=arn, user=self.user),
            started_at=ctx.started_at,
            steps=steps,
            incident=incident,
            read_ms=(time.perf_counter() - started) * 1000,
            read_at=self.clock.monotonic(),
        )

    def _refresh(self, plan: Plan) -> None:
        """Read every before-state again (concurrently); keeps the plan's steps and order."""
        for planned in plan.steps:
            planned.error, planned.change = None, None
        with ThreadPoolExecutor(max_workers=self._workers(plan.steps)) as pool:
            list(pool.map(_read_one, plan.steps))
        plan.read_at = self.clock.monotonic()

    def _workers(self, steps: list[PlannedStep]) -> int:
        # one thread per step: a queued step must not time out before it starts
        return max(1, min(max(self.max_workers, len(steps)), 64))

    # -- executing ---------------------------------------------------------------------------
    def execute(
        self,
        plan: Plan,
        store: IncidentStore,
        *,
        reason: str = "",
        on_result: ProgressFn | None = None,
    ) -> RunResult:
        """Apply (or undo) the plan: independent steps concurrently, each journaled.

        A plan read more than ``refresh_after`` seconds ago (an operator read it and confirmed)
        is read again first, so the journaled before-states and merges are current.
        """
        started = time.perf_counter()
        if self.clock.monotonic() - plan.read_at > self.refresh_after:
            self._refresh(plan)
        incident, opened = plan.incident, False
        if incident is None:
            incident, opened = store.open_or_join(
                plan.agent, at=self.clock.now(), by=str(plan.operator), reason=reason
            )
        journal = _Journal(store, incident.id, plan, reason, self.clock)
        journal.note(
            f"{'opened' if opened else 'joined'} incident for {plan.phase}"
            + (f": {reason}" if reason else "")
        )
        results = self._schedule(plan, journal, on_result)
        total = (time.perf_counter() - started) * 1000 + plan.read_ms
        ordered = [results[p.name] for p in plan.steps]
        return RunResult(
            plan=plan, results=ordered, incident=incident, incident_opened=opened, total_ms=total
        )

    def _schedule(
        self, plan: Plan, journal: _Journal, on_result: ProgressFn | None
    ) -> dict[str, StepResult]:
        pending = {p.name: p for p in plan.steps}
        results: dict[str, StepResult] = {}
        running: dict[Future[StepResult], tuple[PlannedStep, float]] = {}
        aborted_by: str | None = None
        stragglers: list[Future[StepResult]] = []  # timed out but not finished
        pool = ThreadPoolExecutor(max_workers=self._workers(plan.steps))

        def finish(result: StepResult) -> None:
            results[result.name] = result
            if on_result is not None:
                on_result(result)

        try:
            while pending or running:
                for name, planned in list(pending.items()):
                    reason = None
                    if aborted_by is not None:
                        reason = f"not run: step {aborted_by} failed and has on_failure: abort"
                    else:
                        deps = [results.get(d) for d in planned.depends_on]
                        if any(r is None for r in deps):
                            continue
                        bad = [r.name for r in deps if r and r.outcome in _NOT_OK]
                        if bad:
                            reason = f"not run: depends on {', '.join(bad)}, which did not succeed"
                    del pending[name]
                    if reason is not None:
                        journal.write(Event.SKIPPED, planned, error=reason)
                        finish(_result(planned, Outcome.SKIPPED, error=reason))
                        continue
                    deadline = time.monotonic() + _timeout(planned)
                    running[pool.submit(self._run_one, planned, journal)] = (planned, deadline)
                if not running:
                    continue
                nearest = min(d for _, d in running.values())
                done, _ = wait(
                    running,
                    timeout=max(0.0, nearest - time.monotonic()),
                    return_when=FIRST_COMPLETED,
                )
                for future in done:
                    planned, _ = running.pop(future)
                    result = future.result()
                    finish(result)
                    if (
                        result.outcome is Outcome.FAILED
                        and planned.spec.on_failure is OnFailure.ABORT
                    ):
                        aborted_by = aborted_by or planned.name
                now = time.monotonic()
                for future, (planned, deadline) in list(running.items()):
                    if now >= deadline and not future.done():
                        del running[future]
                        stragglers.append(future)
                        message = (
                            f"timed out after {_timeout(planned):g}s; the outcome is unknown "
                            "(the call may still complete), re-run to converge"
                        )
                        undo = planned.mode is Mode.UNDO
                        event = Event.UNDO_FAILED if undo else Event.FAILED
                        journal.write(event, planned, error=message)
                        result = _result(planned, Outcome.FAILED, error=message)
                        result.outcome_unknown = True
                        finish(result)
                        if planned.spec.on_failure is OnFailure.ABORT:
                            aborted_by = aborted_by or planned.name
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            # steps still running (timed out, or left by an interrupt or an error here): their
            # journal entries come later, see wait_for_stragglers
            if left := [f for f in [*running, *stragglers] if not f.done()]:
                self._abandoned.append((pool, left))
        return results

    def _run_one(self, planned: PlannedStep, journal: _Journal) -> StepResult:
        started = time.perf_counter()

        def elapsed() -> float:
            return (time.perf_counter() - started) * 1000 + planned.read_ms

        step = planned.step
        undo = planned.mode is Mode.UNDO
        if planned.error is not None:
            journal.write(
                Event.UNDO_FAILED if undo else Event.FAILED, planned, error=planned.error.message
            )
            return _result(planned, Outcome.FAILED, error=planned.error, ms=elapsed())
        before = planned.before
        if not planned.needs_change:
            # For an undo, "nothing to do" means the read shows the before-state: that is a
            # verified restore, and it must close the target (a later resume must not act).
            event = Event.UNDONE if undo else Event.NOOP
            journal.write(
                event,
                planned,
                before=_dump(planned.restore_to if undo else before),
                after=_dump(before),
                duration_ms=elapsed(),
            )
            return _result(planned, Outcome.NOOP, ms=elapsed(), after=_dump(before))
        if undo:
            journal.write(
                Event.UNDO_INTENT, planned, before=_dump(planned.restore_to), after=_dump(before)
            )
        else:
            journal.write(Event.INTENT, planned, before=_dump(before))
        try:
            if undo:
                step.undo(planned.restore_to)
            else:
                step.apply(before)
        except Exception as exc:
            error = translate_error(exc, step.kind)
            journal.write(
                Event.UNDO_FAILED if undo else Event.FAILED,
                planned,
                error=error.message,
                request_ids=step.take_request_ids(),
                duration_ms=elapsed(),
            )
            return _result(planned, Outcome.FAILED, error=error, ms=elapsed())
        request_ids = step.take_request_ids()
        if not undo:
            journal.write(Event.APPLIED, planned, request_ids=request_ids)
        outcome, after, problem = self._verify(planned)
        rids = step.take_request_ids()
        if undo:
            event = Event.UNDONE if outcome is Outcome.APPLIED else Event.UNDO_FAILED
            journal.write(
                event,
                planned,
                before=_dump(planned.restore_to),
                after=after,
                request_ids=request_ids + rids,
                error=problem,
                duration_ms=elapsed(),
            )
            if outcome is not Outcome.APPLIED:
                return _result(
                    planned,
                    Outcome.FAILED,
                    error=problem,
                    after=after,
                    ms=elapsed(),
                    request_ids=request_ids,
                )
        else:
            event = Event.VERIFIED if outcome is Outcome.APPLIED else Event.UNVERIFIED
            journal.write(
                event, planned, after=after, request_ids=rids, error=problem, duration_ms=elapsed()
            )
        return _result(
            planned,
            outcome,
            after=after,
            ms=elapsed(),
            request_ids=request_ids,
            error=problem if outcome is not Outcome.APPLIED else None,
        )

    def _verify(self, planned: PlannedStep) -> tuple[Outcome, dict[str, Any] | None, str | None]:
        """Read back until the change shows (or the verify timeout passes)."""
        step = planned.step
        if not step.verifiable or step.is_check:
            return Outcome.APPLIED, None, None
        if planned.mode is Mode.UNDO:
            assert planned.restore_to is not None
            restore_to = planned.restore_to

            def done(state: Any) -> bool:
                return step.is_restored(state, restore_to)
        else:
            done = step.is_applied
        try:
            state = poll_until(
                self.clock,
                step.snapshot,
                done,
                timeout=self.verify_timeout,
                interval=self.verify_interval,
            )
        except PollTimeout as exc:
            last = exc.last
            return (
                Outcome.PROPAGATING,
                _dump(last),
                f"read-back shows {step.describe_state(last)} after {self.verify_timeout:g}s; "
                "the change may still be propagating",
            )
        except Exception as exc:
            error = translate_error(exc, step.kind)
            return Outcome.PROPAGATING, None, f"could not read back: {error.message}"
        return Outcome.APPLIED, _dump(state), None


_NOT_OK = (Outcome.FAILED, Outcome.SKIPPED)


def make_step(ctx: StepContext, spec: StepSpec) -> Step[Any, Any]:
    cls = registry.get(spec.action)
    if cls is None:
        raise BadInputError(f"unknown action {spec.action!r}; known: {', '.join(registry.kinds())}")
    from pydantic import ValidationError

    try:
        inputs = cls.Inputs.model_validate(spec.inputs)
    except ValidationError as exc:
        raise BadInputError(f"step {spec.name}: invalid inputs: {exc.errors()[0]['msg']}") from exc
    return cls(ctx, inputs, name=spec.name, retries=spec.retries)


def pending_undos(
    entries: Iterable[JournalEntry], kinds: set[str] | None = None
) -> list[list[JournalEntry]]:
    """For each target changed and not yet restored: its intent entries, oldest first.

    The oldest before-state is what was there before the incident touched the target; later
    intents matter when they widened the change (``contain --tools a`` then ``contain``).
    """
    pending: dict[tuple[str, str], list[JournalEntry]] = {}
    for entry in entries:
        if kinds is not None and entry.kind not in kinds:
            continue
        key = (entry.kind, entry.target)
        if entry.event is Event.INTENT:
            pending.setdefault(key, []).append(entry)
        elif entry.event is Event.UNDONE:
            pending.pop(key, None)
    return list(pending.values())


def _merged_inputs(entries: list[JournalEntry]) -> dict[str, Any]:
    """The inputs of the first intent, with ``tools`` widened to every tool any intent touched."""
    inputs = dict(entries[0].inputs or {})
    if "tools" in inputs:
        selections = [(e.inputs or {}).get("tools") for e in entries]
        if any(sel is None for sel in selections):
            inputs["tools"] = None
        else:
            inputs["tools"] = sorted({t for sel in selections for t in sel or []})
    return inputs


def dry_run_result(plan: Plan) -> RunResult:
    """What ``--dry-run`` reports: the plan, with nothing touched."""
    results = []
    for planned in plan.steps:
        if planned.error is not None:
            results.append(
                _result(planned, Outcome.FAILED, error=planned.error, ms=planned.read_ms)
            )
        elif planned.needs_change:
            results.append(_result(planned, Outcome.PLANNED, ms=planned.read_ms))
        else:
            results.append(
                _result(planned, Outcome.NOOP, ms=planned.read_ms, after=_dump(planned.before))
            )
    return RunResult(
        plan=plan, results=results, incident=plan.incident, total_ms=plan.read_ms, dry_run=True
    )


def _read_one(planned: PlannedStep) -> None:
    started = time.perf_counter()
    step = planned.step
    try:
        planned.before = step.snapshot()
        if planned.mode is Mode.UNDO:
            assert planned.restore_to is not None
            if not step.is_restored(planned.before, planned.restore_to):
                planned.change = step.describe_undo(planned.before, planned.restore_to)
        elif not step.is_applied(planned.before):
            planned.change = step.describe_change(planned.before)
    except Exception as exc:
        planned.error = translate_error(exc, step.kind)
    finally:
        step.take_request_ids()
        planned.read_ms = (time.perf_counter() - started) * 1000


def _timeout(planned: PlannedStep) -> float:
    inner = getattr(planned.step.inputs, "timeout", 0.0) or 0.0
    return max(planned.spec.timeout, float(inner) + 30.0 if inner else 0.0)


def _dump(state: Any) -> dict[str, Any] | None:
    return None if state is None else state.model_dump(mode="json")


def _result(
    planned: PlannedStep,
    outcome: Outcome,
    *,
    error: AgentctlError | str | None = None,
    after: dict[str, Any] | None = None,
    ms: float = 0.0,
    request_ids: list[str] | None = None,
) -> StepResult:
    try:
        target = planned.step.target
    except AgentctlError:
        target = "?"
    message = error.message if isinstance(error, AgentctlError) else error
    return StepResult(
        name=planned.name,
        action=planned.spec.action,
        target=target,
        mode=planned.mode,
        outcome=outcome,
        change=planned.change,
        before=_dump(planned.restore_to if planned.mode is Mode.UNDO else planned.before),
        after=after,
        error=message,
        hint=error.hint if isinstance(error, AgentctlError) else None,
        error_code=getattr(error, "code", None) or None,
        gate_failure=isinstance(error, AgentctlError) and is_gate_failure(error),
        request_ids=request_ids or [],
        duration_ms=ms,
    )


class _Journal:
    """Writes journal entries for one run (one command invocation)."""

    def __init__(
        self, store: IncidentStore, incident_id: str, plan: Plan, reason: str, clock: Clock
    ) -> None:
        self.store = store
        self.incident_id = incident_id
        self.plan = plan
        self.reason = reason
        self.clock = clock
        self.run_id = uuid.uuid4().hex[:12]

    def note(self, message: str) -> None:
        self._append(Event.NOTE, message=message)

    def write(self, event: Event, planned: PlannedStep, **fields: Any) -> None:
        try:
            target = planned.step.target
        except AgentctlError:
            target = "?"
        self._append(
            event,
            step=planned.name,
            kind=planned.step.kind,
            target=target,
            inputs=_journal_inputs(planned.step),
            message=planned.change or "",
            **fields,
        )

    def _append(self, event: Event, **fields: Any) -> None:
        self.store.append(
            JournalEntry(
                incident_id=self.incident_id,
                run_id=self.run_id,
                at=self.clock.now(),
                operator=self.plan.operator,
                phase=self.plan.phase,
                event=event,
                reason=self.reason,
                **fields,
            )
        )


def _journal_inputs(step: Step[Any, Any]) -> dict[str, Any]:
    try:
        return step.resolved_inputs().model_dump(mode="json")
    except AgentctlError:  # the step could not resolve its target: journal what it was given
        return step.inputs.model_dump(mode="json")


def _local_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (containers): still journal something honest
        return "unknown"
