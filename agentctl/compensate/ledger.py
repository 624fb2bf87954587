"""The compensation ledger: one durable row per compensation, exactly-once by construction.

The base class owns the protocol (key hashing, payload hash, the state machine, leases);
each backend (SQLite, DynamoDB) implements a handful of small primitives, each atomic on its own.
This is the shape of aws-powertools' idempotency persistence layer.

States of a row::

    pending ──claim──▶ in_progress ──mark_dispatching──▶ in_progress + dispatch_pending
                                                          │
            completed ◀── the call returned ok ───────────┤
            failed    ◀── the call failed *before* any effect (rejected, unreachable)
            unknown   ◀── the call may have had an effect (timeout, 5xx, crash)
    recorded: a mitigation (nothing is dispatched; the item is a fact for the support team)

Failure semantics (what a ``kill -9`` at each point leaves, and what the next run does):

- before the claim: the row is ``pending`` (rows are written before any dispatch) → claimed
  and dispatched by the next run.
- after the claim, before dispatch: ``in_progress`` with ``dispatch_pending = 0``; once the
  lease expires the next run re-claims it and dispatches: nothing was sent, so nothing doubles.
- after ``mark_dispatching`` (the durable "about to send" write), whether or not the call went
  out: ``in_progress`` with ``dispatch_pending = 1``. After the lease expires this row is treated
  exactly like ``unknown``: it is **reconciled before any retry** — the handler's check (HTTP
  check URL, Python check function), else a re-send with the *same* derived key only where the
  receiver dedupes it (``receiver_dedupes``, or a FIFO queue within SQS's 5-minute dedup
  window); otherwise it stays ``unknown`` and is listed for the operator, never re-sent blindly.
- after completion: ``completed``; later runs skip it.

Two executors: a claim is a conditional write (status claimable, or lease expired), so only one
holds a row at a time; ``mark_dispatching`` is fenced on the owner and an unexpired lease, so an
executor whose lease lapsed cannot dispatch. Leases must be longer than a dispatch timeout.

A payload hash is stored with the row: if a later run computes a different payload for the same
key (the template or spec changed), it refuses to dispatch rather than send something else.
Rows are never deleted.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from agentctl.clock import Clock


class LedgerStatus(StrEnum):
    PENDING = "pending"  # written before any dispatch; not claimed
    IN_PROGRESS = "in_progress"  # claimed under a lease (see dispatch_pending)
    COMPLETED = "completed"  # the compensation is applied
    FAILED = "failed"  # failed before any effect: safe to retry
    UNKNOWN = "unknown"  # dispatched, outcome unknown: reconcile before any retry
    RECORDED = "recorded"  # a mitigation item: recorded, nothing dispatched


#: statuses a claim may take without looking at the lease
CLAIMABLE = frozenset({LedgerStatus.PENDING, LedgerStatus.FAILED, LedgerStatus.UNKNOWN})
#: statuses a claim may take once the holder's lease has expired
RECLAIMABLE_WHEN_EXPIRED = frozenset({LedgerStatus.IN_PROGRESS})
FINAL = frozenset({LedgerStatus.COMPLETED, LedgerStatus.RECORDED})


@dataclass(frozen=True)
class LedgerRow:
    """One compensation (or mitigation) item. Times are epoch seconds from the ledger's clock."""

    key: str
    agent: str
    tool: str
    kind: str  # sqs / events / lambda / http / python / mitigation
    action_key: str  # the original action's idempotency key
    action_id: str
    dispatch_key: str  # the derived idempotency key sent downstream
    payload: str  # canonical JSON
    payload_hash: str
    status: LedgerStatus = LedgerStatus.PENDING
    owner: str | None = None
    lease_until: float | None = None
    dispatch_pending: bool = False
    dispatched_at: float | None = None
    attempts: int = 0
    result: str | None = None
    error: str | None = None
    incident_id: str | None = None
    action_ts: str = ""
    amount: float | None = None
    created_at: float = 0.0
    updated_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "agent": self.agent,
            "tool": self.tool,
            "kind": self.kind,
            "action_key": self.action_key,
            "action_id": self.action_id,
            "dispatch_key": self.dispatch_key,
            "payload": self.payload,
            "payload_hash": self.payload_hash,
            "status": self.status.value,
            "owner": self.owner,
            "lease_until": self.lease_until,
            "dispatch_pending": self.dispatch_pending,
            "dispatched_at": self.dispatched_at,
            "attempts": self.attempts,
            "result": self.result,
            "error": self.error,
            "incident_id": self.incident_id,
            "action_ts": self.action_ts,
            "amount": self.amount,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


COLUMNS = tuple(LedgerRow.__dataclass_fields__)


def row_from_dict(data: dict[str, Any]) -> LedgerRow:
    values: dict[str, Any] = {k: data.get(k) for k in COLUMNS if k in data}
    values["status"] = LedgerStatus(values.get("status", "pending"))
    values["dispatch_pending"] = bool(values.get("dispatch_pending"))
    values["attempts"] = int(values.get("attempts") or 0)
    for name in ("lease_until", "dispatched_at", "amount"):
        if values.get(name) is not None:
            values[name] = float(values[name])
    for name in ("created_at", "updated_at"):
        values[name] = float(values.get(name) or 0.0)
    values["action_ts"] = values.get("action_ts") or ""
    return LedgerRow(**values)


@dataclass
class Finish:
    """The outcome of one dispatch, to record."""

    key: str
    status: LedgerStatus  # COMPLETED, FAILED or UNKNOWN
    result: str | None = None
    error: str | None = None


@dataclass
class Registration:
    """What :meth:`Ledger.register` found for each item."""

    rows: dict[str, LedgerRow] = field(default_factory=dict)
    created: int = 0
    conflicts: dict[str, LedgerRow] = field(default_factory=dict)  # key → stored row


def compensation_key(agent: str, tool: str, action_key: str) -> str:
    """The ledger key of one original action: stable, independent of window and incident."""
    text = "\x1f".join(("agentctl.compensation.v1", agent, tool, action_key))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def dispatch_key(key: str) -> str:
    """The idempotency key sent downstream (and SQS FIFO dedup id): derived, same every retry."""
    return f"agentctl-comp-{key[:40]}"


class Ledger(ABC):
    """The protocol. Backends implement the ``_primitives``; everything else lives here."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def now(self) -> float:
        return self.clock.now().timestamp()

    # -- protocol ------------------------------------------------------------------------------
    def register(self, rows: Sequence[LedgerRow]) -> Registration:
        """Write each row if its key is new (before anything is dispatched); report rows whose
        stored payload hash differs (the payload changed since: never dispatched)."""
        now = self.now()
        fresh = [replace(r, created_at=now, updated_at=now) for r in rows]
        stored, created = self._insert_missing(fresh)
        out = Registration(created=len(created))
        for row in fresh:
            have = stored[row.key]
            out.rows[row.key] = have
            if have.payload_hash != row.payload_hash:
                out.conflicts[row.key] = have
        return out

    def claim(self, keys: Sequence[str], owner: str, lease_seconds: float) -> list[LedgerRow]:
        """Conditionally take the rows that are free (claimable, or their lease expired)."""
        if not keys:
            return []
        now = self.now()
        return self._claim(keys, owner, now, now + lease_seconds)

    def mark_dispatching(self, keys: Sequence[str], owner: str) -> set[str]:
        """The durable "about to send" write, fenced on owner + live lease. Returns the keys
        this owner may now dispatch."""
        if not keys:
            return set()
        now = self.now()
        return self._mark_dispatching(keys, owner, now)

    def finish(self, outcomes: Sequence[Finish], owner: str) -> None:
        """Record outcomes. ``completed`` is a fact and is recorded even if the lease lapsed;
        ``failed`` / ``unknown`` only by the current owner."""
        if outcomes:
            self._finish(outcomes, owner, self.now())

    def release(self, key: str, owner: str, status: LedgerStatus, error: str) -> bool:
        """Give a claimed row back without dispatching (e.g. reconciliation was inconclusive)."""
        return self._finish_one(Finish(key, status, error=error), owner, self.now())

    def resolve(self, key: str, *, applied: bool, by: str) -> LedgerRow:
        """An operator's decision on an ``unknown`` row: ``applied`` → completed, else failed
        (the next run sends it again, with the same key)."""
        row = self.get(key)
        if row is None:
            raise KeyError(key)
        status = LedgerStatus.COMPLETED if applied else LedgerStatus.FAILED
        note = f"resolved by {by}: {'applied' if applied else 'not applied'}"
        self._resolve(key, status, note, self.now())
        got = self.get(key)
        assert got is not None
        return got

    def get(self, key: str) -> LedgerRow | None:
        rows = self._get([key])
        return rows[0] if rows else None

    def get_many(self, keys: Sequence[str]) -> list[LedgerRow]:
        return self._get(keys)

    def rows(self, agent: str) -> Iterator[LedgerRow]:
        return self._rows(agent)

    # -- backend primitives --------------------------------------------------------------------
    @abstractmethod
    def _insert_missing(self, rows: Sequence[LedgerRow]) -> tuple[dict[str, LedgerRow], set[str]]:
        """Insert rows whose key is absent (conditional put); return the stored row per key
        and the keys inserted now."""

    @abstractmethod
    def _claim(
        self, keys: Sequence[str], owner: str, now: float, lease_until: float
    ) -> list[LedgerRow]:
        """For each key, atomically: if status in CLAIMABLE, or status in
        RECLAIMABLE_WHEN_EXPIRED and lease_until < now, set status in_progress, owner, lease.
        Return the rows claimed, as they were *before* the claim (their dispatch_pending
        tells the claimer whether an earlier dispatch may have happened)."""

    @abstractmethod
    def _mark_dispatching(self, keys: Sequence[str], owner: str, now: float) -> set[str]:
        """For each key, atomically, if owner matches, status in_progress and lease_until > now:
        set dispatch_pending, attempts + 1, and dispatched_at = now if it is not set yet (it is
        the *first* attempt: dedup windows count from there). Return the keys updated."""

    @abstractmethod
    def _finish_one(self, outcome: Finish, owner: str, now: float) -> bool:
        """Completed: if status != completed. Failed/unknown: if owner matches and status is
        in_progress. Sets dispatch_pending = (status is unknown), clears owner/lease."""

    def _finish(self, outcomes: Sequence[Finish], owner: str, now: float) -> None:
        for outcome in outcomes:
            self._finish_one(outcome, owner, now)

    @abstractmethod
    def _resolve(self, key: str, status: LedgerStatus, note: str, now: float) -> None:
        """Set status (only from unknown, or in_progress with an expired lease)."""

    @abstractmethod
    def _get(self, keys: Sequence[str]) -> list[LedgerRow]: ...

    @abstractmethod
    def _rows(self, agent: str) -> Iterator[LedgerRow]: ...


def by_status(rows: Iterable[LedgerRow]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status.value] = counts.get(row.status.value, 0) + 1
    return counts
