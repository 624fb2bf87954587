"""The durable record of moved messages: what makes a divert exactly-once across crashes.

One row per (source queue ARN, source message id). States, in order:

- ``claimed``: received and about to be sent (the receipt handle is kept so a re-run can make
  the message visible again at once instead of waiting out the visibility timeout);
- ``released``: known *not* sent (the send call was rejected as a whole): treat as new;
- ``sent``: the copy is in the destination queue (its message id is kept);
- ``deleted``: removed from the source. Done.

A re-run deletes ``sent`` messages from the source without sending them again. A ``claimed``
row means the process stopped between writing the claim and recording the send: the send may
or may not have happened, so the message is sent again (never lost) and counted as a possible
duplicate; the copy carries the original message id, and a FIFO destination deduplicates it
by that id. Rows are never deleted.

Backends implement :class:`MoveLedger` (SQLite here, in the incident store's file; a DynamoDB
table later, with the same five primitives as conditional writes).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from agentctl.errors import StoreError


class MoveState(StrEnum):
    CLAIMED = "claimed"
    RELEASED = "released"
    SENT = "sent"
    DELETED = "deleted"


@dataclass(frozen=True)
class Claim:
    won: set[str]  # this run may send these
    taken_over: set[str]  # of those: claimed by an interrupted run (maybe sent: count them)


@dataclass(frozen=True)
class MoveRecord:
    message_id: str
    state: MoveState
    receipt_handle: str
    dest_message_id: str | None


class MoveLedger(Protocol):
    def states(self, source: str, message_ids: Sequence[str]) -> dict[str, MoveState]:
        """The recorded state of each of ``message_ids`` moved out of ``source`` (absent: new)."""
        ...

    def claim(
        self,
        source: str,
        dest: str,
        incident_id: str,
        run_id: str,
        items: Sequence[tuple[str, str]],
    ) -> Claim:
        """Claim ``(message_id, receipt_handle)`` pairs for ``run_id`` before sending them, in
        one committed conditional write. Won: new, released, or claimed by another (earlier,
        interrupted) run. Lost: claimed by this run already (SQS delivered the message twice,
        to two workers) or already sent."""
        ...

    def settle(
        self, source: str, state: MoveState, items: Sequence[tuple[str, str | None]]
    ) -> None:
        """Set ``state`` on ``(message_id, dest_message_id or None)``. Committed."""
        ...

    def unfinished(self, source: str, dest: str) -> list[MoveRecord]:
        """Rows of this move still ``claimed`` or ``sent``."""
        ...

    def moved_to(self, source: str, dest: str, dest_message_ids: Sequence[str]) -> set[str]:
        """Which of ``dest_message_ids`` are copies this ledger made from ``source``."""
        ...


SCHEMA = """
CREATE TABLE IF NOT EXISTS drain_moves (
    source TEXT NOT NULL,
    message_id TEXT NOT NULL,
    dest TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    state TEXT NOT NULL,
    receipt_handle TEXT NOT NULL,
    dest_message_id TEXT,
    claimed_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (source, message_id)
);
CREATE INDEX IF NOT EXISTS drain_moves_unfinished ON drain_moves(source, dest, state);
CREATE INDEX IF NOT EXISTS drain_moves_by_dest_id ON drain_moves(dest, dest_message_id);
"""


class SqliteMoveLedger:
    """The ledger as a table in the incident store's SQLite file (its connection and lock)."""

    def __init__(self, store: Any) -> None:
        # ``store`` is an agentctl.incidents.sqlite.SqliteStore: ``conn`` + ``transaction()``.
        self.store = store
        try:
            with store.lock:
                store.conn.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot create the drain ledger in {store.path}: {exc}") from exc

    def states(self, source: str, message_ids: Sequence[str]) -> dict[str, MoveState]:
        if not message_ids:
            return {}
        marks = ",".join("?" * len(message_ids))
        with self.store.lock:
            rows = self.store.conn.execute(
                f"SELECT message_id, state FROM drain_moves WHERE source = ? "
                f"AND message_id IN ({marks})",
                (source, *message_ids),
            ).fetchall()
        return {r[0]: MoveState(r[1]) for r in rows}

    def claim(
        self,
        source: str,
        dest: str,
        incident_id: str,
        run_id: str,
        items: Sequence[tuple[str, str]],
    ) -> Claim:
        now = _now()
        won: set[str] = set()
        taken_over: set[str] = set()
        with self.store.transaction() as conn:
            for message_id, receipt in items:
                row = conn.execute(
                    "SELECT state, run_id FROM drain_moves WHERE source = ? AND message_id = ?",
                    (source, message_id),
                ).fetchone()
                if row is None:
                    conn.execute(
                        "INSERT INTO drain_moves (source, message_id, dest, incident_id, run_id,"
                        " state, receipt_handle, claimed_at, updated_at)"
                        " VALUES (?, ?, ?, ?, ?, 'claimed', ?, ?, ?)",
                        (source, message_id, dest, incident_id, run_id, receipt, now, now),
                    )
                    won.add(message_id)
                    continue
                state, holder = MoveState(row[0]), row[1]
                if state in (MoveState.SENT, MoveState.DELETED):
                    continue
                if state is MoveState.CLAIMED and holder == run_id:
                    continue  # another worker of this run holds it
                if state is MoveState.CLAIMED:
                    taken_over.add(message_id)
                conn.execute(
                    "UPDATE drain_moves SET state = 'claimed', run_id = ?, receipt_handle = ?,"
                    " dest = ?, updated_at = ? WHERE source = ? AND message_id = ?",
                    (run_id, receipt, dest, now, source, message_id),
                )
                won.add(message_id)
        return Claim(won=won, taken_over=taken_over)

    def settle(
        self, source: str, state: MoveState, items: Sequence[tuple[str, str | None]]
    ) -> None:
        if not items:
            return
        now = _now()
        with self.store.transaction() as conn:
            conn.executemany(
                "UPDATE drain_moves SET state = ?, updated_at = ?,"
                " dest_message_id = COALESCE(?, dest_message_id)"
                " WHERE source = ? AND message_id = ?",
                [(state.value, now, dest_id, source, mid) for mid, dest_id in items],
            )

    def unfinished(self, source: str, dest: str) -> list[MoveRecord]:
        with self.store.lock:
            rows = self.store.conn.execute(
                "SELECT message_id, state, receipt_handle, dest_message_id FROM drain_moves"
                " WHERE source = ? AND dest = ? AND state IN ('claimed', 'sent')",
                (source, dest),
            ).fetchall()
        return [MoveRecord(r[0], MoveState(r[1]), r[2], r[3]) for r in rows]

    def moved_to(self, source: str, dest: str, dest_message_ids: Sequence[str]) -> set[str]:
        if not dest_message_ids:
            return set()
        marks = ",".join("?" * len(dest_message_ids))
        with self.store.lock:
            rows = self.store.conn.execute(
                f"SELECT dest_message_id FROM drain_moves WHERE source = ? AND dest = ? "
                f"AND dest_message_id IN ({marks})",
                (source, dest, *dest_message_ids),
            ).fetchall()
        return {r[0] for r in rows}

    def count(self, source: str, state: MoveState) -> int:
        with self.store.lock:
            (n,) = self.store.conn.execute(
                "SELECT COUNT(*) FROM drain_moves WHERE source = ? AND state = ?",
                (source, state.value),
            ).fetchone()
        return int(n)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def ledger_for(store: Any) -> MoveLedger:
    """The move ledger that lives next to ``store``'s incidents."""
    conn = getattr(store, "conn", None)
    if conn is None or not hasattr(store, "transaction"):
        raise StoreError(
            f"the incident store {type(store).__name__} has no drain ledger",
            hint="use the SQLite store (the default) for `drain --divert`",
        )
    return SqliteMoveLedger(store)
