"""Execute a compensation plan through the ledger: several workers, batches, leases, reconcile.

Per batch of keys (one tool, up to the handler's batch size): claim (conditional) → reconcile the
claimed rows that were dispatched before (check, or re-send only where the receiver dedupes,
else leave ``unknown``) → mark dispatching (durable, fenced) → dispatch → record outcomes.
Items held by another executor are waited for (up to one lease) and then either found done or
taken over. ``not_applied`` outcomes (rejected, throttled, unreachable) are retried a few times
in the same run with backoff through the clock.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agentctl.aws import Aws
from agentctl.clock import Clock, PollTimeout, poll_until
from agentctl.compensate.handlers import Dispatch, Handler, Outcome, WorkItem, make_handler
from agentctl.compensate.ledger import (
    CLAIMABLE,
    FINAL,
    Finish,
    Ledger,
    LedgerRow,
    LedgerStatus,
)
from agentctl.compensate.planner import CompensationPlan
from agentctl.errors import AgentctlError, ExitCode
from agentctl.spec.models import AgentSpec

ProgressFn = Callable[[int, int], None]
#: test hook: called with a point name and the keys at that point
Checkpoint = Callable[[str, Sequence[str]], None]
POINTS = ("before_claim", "after_claim", "after_dispatch", "after_finish")


@dataclass
class ItemResult:
    key: str
    tool: str
    action_id: str
    status: str
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return {
            "key": self.key,
            "tool": self.tool,
            "action_id": self.action_id,
            "status": self.status,
            "detail": self.detail,
        }


@dataclass
class ExecutionReport:
    owner: str
    planned: int = 0
    mitigations_recorded: int = 0
    completed: int = 0  # applied by this run
    already_done: int = 0  # completed before this run (or by another executor meanwhile)
    reconciled: int = 0  # unknown outcomes resolved as applied by a check
    resent_deduped: int = 0  # unknown outcomes re-sent with the same key to a deduping receiver
    failed: list[ItemResult] = field(default_factory=list)
    unknown: list[ItemResult] = field(default_factory=list)
    held: list[ItemResult] = field(default_factory=list)
    conflicts: list[ItemResult] = field(default_factory=list)

    @property
    def problems(self) -> list[ItemResult]:
        return self.conflicts + self.failed + self.unknown + self.held

    @property
    def exit_code(self) -> ExitCode:
        if not self.problems:
            return ExitCode.OK
        # Unknown outcomes and items held by another run may have taken effect: never "failed,
        # nothing changed".
        maybe_done = self.completed or self.already_done or self.unknown or self.held
        return ExitCode.PARTIAL if maybe_done else ExitCode.ERROR

    def to_dict(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "planned": self.planned,
            "completed": self.completed,
            "already_done": self.already_done,
            "reconciled": self.reconciled,
            "resent_deduped": self.resent_deduped,
            "mitigations_recorded": self.mitigations_recorded,
            "failed": [r.to_dict() for r in self.failed],
            "unknown": [r.to_dict() for r in self.unknown],
            "held": [r.to_dict() for r in self.held],
            "conflicts": [r.to_dict() for r in self.conflicts],
            "exit_code": int(self.exit_code),
        }


def default_owner(user: str | None = None) -> str:
    who = user
    if who is None:
        try:
            who = getpass.getuser()
        except Exception:
            who = "unknown"
    return f"{who}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Executor:
    """Runs compensations exactly once. Everything it needs is passed in."""

    def __init__(
        self,
        ledger: Ledger,
        aws: Aws,
        spec: AgentSpec,
        *,
        clock: Clock,
        owner: str | None = None,
        workers: int = 16,
        lease_seconds: float = 120.0,
        retries: int = 2,
        wait_for_held: bool = True,
        handler_factory: Callable[[Aws, Any, str], Handler] = make_handler,
        checkpoint: Checkpoint | None = None,
    ) -> None:
        self.ledger = ledger
        self.aws = aws
        self.spec = spec
        self.clock = clock
        self.owner = owner or default_owner()
        self.workers = max(1, workers)
        self.lease_seconds = lease_seconds
        self.retries = retries
        self.wait_for_held = wait_for_held
        self.handler_factory = handler_factory
        self.checkpoint = checkpoint
        self._handlers: dict[str, Handler | AgentctlError] = {}
        self._lock = threading.Lock()
        # Set when a batch dies of a BaseException (Ctrl-C, SystemExit): no new batch starts.
        self._halt = threading.Event()

    # -- public ----------------------------------------------------------------------------------
    def run(self, plan: CompensationPlan, progress: ProgressFn | None = None) -> ExecutionReport:
        report = ExecutionReport(owner=self.owner)
        registration = self.ledger.register([*plan.compensations, *plan.mitigations])
        report.mitigations_recorded = len(plan.mitigations)
        report.planned = len(plan.compensations)
        todo: list[LedgerRow] = []
        for row in plan.compensations:
            stored = registration.rows[row.key]
            if stored.status in FINAL:
                # Done is done: a payload that differs now (the spec's template or extractors
                # changed since) is not a reason to send again, nor an error.
                report.already_done += 1
            elif row.key in registration.conflicts:
                report.conflicts.append(
                    _item(
                        stored,
                        "conflict",
                        f"payload changed since first planned (stored {stored.payload_hash[:12]},"
                        f" now {row.payload_hash[:12]}); not sent",
                    )
                )
            else:
                todo.append(stored)
        total = len(todo)
        counter = _Counter(total, progress)
        held = self._pass(todo, report, counter)
        if held and self.wait_for_held:
            held = self._wait_and_retake(held, report, counter)
        for row in held:
            report.held.append(
                _item(
                    row,
                    "held",
                    f"claimed by {row.owner} until {_iso(row.lease_until)}; re-run after that",
                )
            )
        return report

    # -- passes ----------------------------------------------------------------------------------
    def _pass(
        self, rows: list[LedgerRow], report: ExecutionReport, counter: _Counter
    ) -> list[LedgerRow]:
        """Process rows in batches on the worker pool; return rows another executor holds."""
        held: list[LedgerRow] = []
        batches: list[tuple[Handler | AgentctlError, list[LedgerRow]]] = []
        by_tool: dict[str, list[LedgerRow]] = {}
        for row in rows:
            by_tool.setdefault(row.tool, []).append(row)
        for tool, tool_rows in by_tool.items():
            handler = self._handler(tool)
            size = handler.batch_size if isinstance(handler, Handler) else len(tool_rows)
            for start in range(0, len(tool_rows), size):
                batches.append((handler, tool_rows[start : start + size]))
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="compensate")
        try:
            futures = [pool.submit(self._batch, h, b, report, counter) for h, b in batches]
            for future in futures:
                held.extend(future.result())
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return held

    def _wait_and_retake(
        self, held: list[LedgerRow], report: ExecutionReport, counter: _Counter
    ) -> list[LedgerRow]:
        keys = [r.key for r in held]

        def settled(rows: list[LedgerRow]) -> bool:
            now = self.ledger.now()
            return all(
                r.status in FINAL
                or r.status in CLAIMABLE
                or (r.lease_until is not None and r.lease_until < now)
                for r in rows
            )

        try:
            rows = poll_until(
                self.clock,
                lambda: self.ledger.get_many(keys),
                settled,
                timeout=self.lease_seconds + 1.0,
                interval=1.0,
            )
        except PollTimeout as exc:
            rows = exc.last  # type: ignore[assignment]
        rest = []
        for row in rows:
            if row.status in FINAL:
                report.already_done += 1
                counter.add(1)
            else:
                rest.append(row)
        return self._pass(rest, report, counter) if rest else []

    def _batch(
        self,
        handler: Handler | AgentctlError,
        rows: list[LedgerRow],
        report: ExecutionReport,
        counter: _Counter,
    ) -> list[LedgerRow]:
        if self._halt.is_set():
            return []
        try:
            return self._batch_inner(handler, rows, report, counter)
        except Exception:
            raise
        except BaseException:
            self._halt.set()
            raise

    def _batch_inner(
        self,
        handler: Handler | AgentctlError,
        rows: list[LedgerRow],
        report: ExecutionReport,
        counter: _Counter,
    ) -> list[LedgerRow]:
        if isinstance(handler, AgentctlError):
            with self._lock:
                for row in rows:
                    report.failed.append(_item(row, "failed", f"not sent: {handler.message}"))
            counter.add(len(rows))
            return []
        pending = list(rows)
        held: list[LedgerRow] = []
        for attempt in range(self.retries + 1):
            if attempt:
                self.clock.sleep(0.5 * 2 ** (attempt - 1))
            pending, more_held = self._attempt(
                handler, pending, report, counter, last=attempt == self.retries
            )
            held.extend(more_held)
            if not pending:
                break
        return held

    def _attempt(
        self,
        handler: Handler,
        rows: list[LedgerRow],
        report: ExecutionReport,
        counter: _Counter,
        *,
        last: bool,
    ) -> tuple[list[LedgerRow], list[LedgerRow]]:
        """One try at a batch. Returns (rows to retry: not applied, rows held elsewhere)."""
        keys = [r.key for r in rows]
        self._point("before_claim", keys)
        claimed = self.ledger.claim(keys, self.owner, self.lease_seconds)
        self._point("after_claim", [r.key for r in claimed])
        taken = {r.key for r in claimed}
        held: list[LedgerRow] = []
        others = [k for k in keys if k not in taken]
        if others:
            for row in self.ledger.get_many(others):
                if row.status in FINAL:
                    with self._lock:
                        report.already_done += 1
                    counter.add(1)
                else:
                    held.append(row)
        to_send: list[WorkItem] = []
        now = self.ledger.now()
        for row in claimed:
            item = _work_item(row)
            if not row.dispatch_pending:
                to_send.append(item)
                continue
            applied = handler.check(item)
            if applied is True:
                self.ledger.finish(
                    [Finish(row.key, LedgerStatus.COMPLETED, result="reconciled: already applied")],
                    self.owner,
                )
                with self._lock:
                    report.reconciled += 1
                    report.completed += 1
                counter.add(1)
            elif applied is False or handler.resend_is_deduped(item, now):
                if applied is None:
                    with self._lock:
                        report.resent_deduped += 1
                to_send.append(item)
            else:
                message = (
                    f"outcome unknown after dispatch at {_iso(row.dispatched_at)} "
                    f"({row.error or 'interrupted'}); {handler.describe()} cannot be checked and "
                    "does not dedupe: not re-sent"
                )
                self.ledger.release(row.key, self.owner, LedgerStatus.UNKNOWN, message)
                with self._lock:
                    report.unknown.append(_item(row, "unknown", message))
                counter.add(1)
        if not to_send:
            return [], held
        marked = self.ledger.mark_dispatching([i.key for i in to_send], self.owner)
        lost = [i for i in to_send if i.key not in marked]
        if lost:
            held.extend(self.ledger.get_many([i.key for i in lost]))
        sending = [i for i in to_send if i.key in marked]
        if not sending:
            return [], held
        try:
            results = handler.dispatch_batch(sending)
        except Exception as exc:  # a handler bug: it may have sent some, so not "not applied"
            results = [Dispatch(Outcome.UNKNOWN, f"handler raised: {exc!r}")] * len(sending)
        self._point("after_dispatch", [i.key for i in sending])
        outcomes: list[Finish] = []
        retry: list[WorkItem] = []
        done: list[tuple[WorkItem, Dispatch]] = []
        for item, result in zip(sending, results, strict=True):
            if result.outcome is Outcome.APPLIED:
                outcomes.append(Finish(item.key, LedgerStatus.COMPLETED, result=result.detail))
            elif result.outcome is Outcome.NOT_APPLIED:
                outcomes.append(Finish(item.key, LedgerStatus.FAILED, error=result.detail))
                retry.append(item)
            else:
                outcomes.append(Finish(item.key, LedgerStatus.UNKNOWN, error=result.detail))
            done.append((item, result))
        self.ledger.finish(outcomes, self.owner)
        self._point("after_finish", [i.key for i in sending])
        rows_by_key = {r.key: r for r in rows}
        with self._lock:
            for item, result in done:
                row = rows_by_key[item.key]
                if result.outcome is Outcome.APPLIED:
                    report.completed += 1
                elif result.outcome is Outcome.UNKNOWN:
                    report.unknown.append(_item(row, "unknown", result.detail))
                elif last:
                    report.failed.append(_item(row, "failed", result.detail))
        settled = len(done) - (0 if last else len(retry))
        counter.add(settled)
        retry_rows = [] if last else [rows_by_key[i.key] for i in retry]
        return retry_rows, held

    # -- helpers ---------------------------------------------------------------------------------
    def _handler(self, tool: str) -> Handler | AgentctlError:
        with self._lock:
            if tool not in self._handlers:
                spec_tool = next((t for t in self.spec.tools if t.name == tool), None)
                if spec_tool is None or spec_tool.compensation is None:
                    self._handlers[tool] = AgentctlError(
                        f"tool {tool!r} declares no compensation in the spec any more"
                    )
                else:
                    try:
                        self._handlers[tool] = self.handler_factory(
                            self.aws, spec_tool.compensation, self.spec.name
                        )
                    except AgentctlError as exc:
                        self._handlers[tool] = exc
            return self._handlers[tool]

    def _point(self, name: str, keys: Sequence[str]) -> None:
        if self.checkpoint is not None:
            self.checkpoint(name, keys)


class _Counter:
    def __init__(self, total: int, progress: ProgressFn | None) -> None:
        self.total = total
        self.done = 0
        self.progress = progress
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        if n <= 0:
            return
        with self._lock:
            self.done += n
            done = self.done
        if self.progress is not None:
            self.progress(min(done, self.total), self.total)


def _work_item(row: LedgerRow) -> WorkItem:
    return WorkItem(
        key=row.key,
        dispatch_key=row.dispatch_key,
        agent=row.agent,
        tool=row.tool,
        payload=json.loads(row.payload),
        first_dispatched_at=row.dispatched_at,
    )


def _item(row: LedgerRow, status: str, detail: str) -> ItemResult:
    return ItemResult(
        key=row.key, tool=row.tool, action_id=row.action_id, status=status, detail=detail
    )


def _iso(epoch: float | None) -> str:
    if epoch is None:
        return "?"
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
