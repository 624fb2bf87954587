"""The ledger in the incident SQLite file: its own table, written through the store's
connection and immediate transactions (so it serialises with other processes' writers).

Each primitive is one ``BEGIN IMMEDIATE`` transaction committed with ``synchronous=FULL``; a
batch of keys is claimed / marked / finished in one transaction (group commit), each row under
its own condition. Triggers refuse DELETE: rows are never removed.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

from agentctl.clock import Clock
from agentctl.compensate.ledger import (
    CLAIMABLE,
    COLUMNS,
    RECLAIMABLE_WHEN_EXPIRED,
    Finish,
    Ledger,
    LedgerRow,
    LedgerStatus,
    row_from_dict,
)
from agentctl.incidents.sqlite import SqliteStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS compensation_ledger (
    key TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    tool TEXT NOT NULL,
    kind TEXT NOT NULL,
    action_key TEXT NOT NULL,
    action_id TEXT NOT NULL,
    dispatch_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    payload_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    owner TEXT,
    lease_until REAL,
    dispatch_pending INTEGER NOT NULL DEFAULT 0,
    dispatched_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    result TEXT,
    error TEXT,
    incident_id TEXT,
    action_ts TEXT NOT NULL DEFAULT '',
    amount REAL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS compensation_ledger_by_agent ON compensation_ledger(agent, status);
CREATE TRIGGER IF NOT EXISTS compensation_ledger_no_delete BEFORE DELETE ON compensation_ledger
    BEGIN SELECT RAISE(ABORT, 'ledger rows are never deleted'); END;
"""

T = TypeVar("T")
_CHUNK = 400  # keys per IN (...) list: well under SQLite's variable limit
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM compensation_ledger"


class _GroupCommit:
    """Group commit: writes from many worker threads share one transaction (one fsync).

    A worker hands in a function of the connection and blocks until the transaction holding it
    has committed, so every write is durable before the worker goes on, exactly as with one
    transaction per write. If a grouped transaction fails, each write is retried on its own so
    one bad write cannot fail the others. The committing thread exits when idle.
    """

    MAX_GROUP = 256
    IDLE_SECONDS = 0.5

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.queue: queue.Queue[tuple[Callable[[Any], Any], Future[Any]]] = queue.Queue()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def run(self, op: Callable[[Any], T]) -> T:
        future: Future[T] = Future()
        self.queue.put((op, future))
        with self.lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._loop, name="ledger-commit", daemon=True)
                self.thread.start()
        return future.result()

    def _loop(self) -> None:
        while True:
            try:
                first = self.queue.get(timeout=self.IDLE_SECONDS)
            except queue.Empty:
                with self.lock:
                    if self.queue.empty():
                        self.thread = None
                        return
                continue
            group = [first]
            while len(group) < self.MAX_GROUP:
                try:
                    group.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            try:
                with self.store.transaction() as conn:
                    results = [op(conn) for op, _ in group]
            except Exception:
                for op, future in group:
                    try:
                        with self.store.transaction() as conn:
                            future.set_result(op(conn))
                    except Exception as exc:
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(group, results, strict=True):
                future.set_result(result)


class SqliteLedger(Ledger):
    def __init__(self, store: SqliteStore, clock: Clock) -> None:
        super().__init__(clock)
        self.store = store
        with store.lock:
            store.conn.executescript(SCHEMA)
        self.group = _GroupCommit(store)

    def _insert_missing(self, rows: Sequence[LedgerRow]) -> tuple[dict[str, LedgerRow], set[str]]:
        placeholders = ", ".join("?" for _ in COLUMNS)
        sql = (
            f"INSERT INTO compensation_ledger ({', '.join(COLUMNS)}) VALUES ({placeholders})"
            " ON CONFLICT(key) DO NOTHING"
        )
        created: set[str] = set()
        with self.store.transaction() as conn:
            for row in rows:
                cursor = conn.execute(sql, _values(row))
                if cursor.rowcount:
                    created.add(row.key)
        stored = {r.key: r for r in self._get([r.key for r in rows])}
        return stored, created

    def _claim(
        self, keys: Sequence[str], owner: str, now: float, lease_until: float
    ) -> list[LedgerRow]:
        def op(conn: Any) -> list[LedgerRow]:
            return self._claim_in(conn, keys, owner, now, lease_until)

        return self.group.run(op)

    def _claim_in(
        self, conn: Any, keys: Sequence[str], owner: str, now: float, lease_until: float
    ) -> list[LedgerRow]:
        claimable = ", ".join(f"'{s.value}'" for s in CLAIMABLE)
        expired = ", ".join(f"'{s.value}'" for s in RECLAIMABLE_WHEN_EXPIRED)
        claimed: list[LedgerRow] = []
        for chunk in _chunks(keys):
            marks = ", ".join("?" for _ in chunk)
            before = {
                r.key: r
                for r in _rows(
                    conn.execute(
                        f"{_SELECT} WHERE key IN ({marks}) AND (status IN ({claimable})"
                        f" OR (status IN ({expired}) AND lease_until < ?))",
                        (*chunk, now),
                    )
                )
            }
            if not before:
                continue
            picked = list(before)
            marks = ", ".join("?" for _ in picked)
            # Same condition again inside the same immediate transaction: nobody can
            # write between the read and this update, so "before" is exactly what we took.
            conn.execute(
                "UPDATE compensation_ledger SET status = 'in_progress', owner = ?,"
                f" lease_until = ?, updated_at = ? WHERE key IN ({marks})",
                (owner, lease_until, now, *picked),
            )
            claimed.extend(before.values())
        return claimed

    def _mark_dispatching(self, keys: Sequence[str], owner: str, now: float) -> set[str]:
        return self.group.run(lambda conn: self._mark_in(conn, keys, owner, now))

    @staticmethod
    def _mark_in(conn: Any, keys: Sequence[str], owner: str, now: float) -> set[str]:
        marked: set[str] = set()
        for chunk in _chunks(keys):
            marks = ", ".join("?" for _ in chunk)
            cursor = conn.execute(
                "UPDATE compensation_ledger SET dispatch_pending = 1,"
                " dispatched_at = COALESCE(dispatched_at, ?),"
                " attempts = attempts + 1, updated_at = ?"
                f" WHERE key IN ({marks}) AND owner = ? AND status = 'in_progress'"
                " AND lease_until > ? RETURNING key",
                (now, now, *chunk, owner, now),
            )
            marked.update(r[0] for r in cursor.fetchall())
        return marked

    def _finish(self, outcomes: Sequence[Finish], owner: str, now: float) -> None:
        def op(conn: Any) -> None:
            for outcome in outcomes:
                _finish_in(conn, outcome, owner, now)

        self.group.run(op)

    def _finish_one(self, outcome: Finish, owner: str, now: float) -> bool:
        with self.store.transaction() as conn:
            return _finish_in(conn, outcome, owner, now)

    def _resolve(self, key: str, status: LedgerStatus, note: str, now: float) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE compensation_ledger SET status = ?, dispatch_pending = 0, owner = NULL,"
                " lease_until = NULL, result = ?, updated_at = ? WHERE key = ?"
                " AND (status = 'unknown' OR (status = 'in_progress' AND dispatch_pending = 1"
                " AND lease_until < ?))",
                (status.value, note, now, key, now),
            )

    def _get(self, keys: Sequence[str]) -> list[LedgerRow]:
        out: list[LedgerRow] = []
        with self.store.lock:
            for chunk in _chunks(keys):
                marks = ", ".join("?" for _ in chunk)
                out.extend(
                    _rows(self.store.conn.execute(f"{_SELECT} WHERE key IN ({marks})", chunk))
                )
        return out

    def _rows(self, agent: str) -> Iterator[LedgerRow]:
        with self.store.lock:
            rows = _rows(
                self.store.conn.execute(
                    f"{_SELECT} WHERE agent = ? ORDER BY action_ts, key", (agent,)
                )
            )
        return iter(rows)


def _finish_in(conn: Any, outcome: Finish, owner: str, now: float) -> bool:
    if outcome.status is LedgerStatus.COMPLETED:
        cursor = conn.execute(
            "UPDATE compensation_ledger SET status = 'completed', dispatch_pending = 0,"
            " owner = NULL, lease_until = NULL, result = ?, error = NULL, updated_at = ?"
            " WHERE key = ? AND status != 'completed'",
            (outcome.result, now, outcome.key),
        )
    else:
        cursor = conn.execute(
            "UPDATE compensation_ledger SET status = ?, dispatch_pending = ?, owner = NULL,"
            " lease_until = NULL, error = ?, updated_at = ?"
            " WHERE key = ? AND owner = ? AND status = 'in_progress'",
            (
                outcome.status.value,
                1 if outcome.status is LedgerStatus.UNKNOWN else 0,
                outcome.error,
                now,
                outcome.key,
                owner,
            ),
        )
    return bool(cursor.rowcount)


def _values(row: LedgerRow) -> tuple[Any, ...]:
    data = row.to_dict()
    data["dispatch_pending"] = 1 if row.dispatch_pending else 0
    return tuple(data[c] for c in COLUMNS)


def _rows(cursor: Any) -> list[LedgerRow]:
    return [row_from_dict(dict(zip(COLUMNS, r, strict=True))) for r in cursor.fetchall()]


def _chunks(keys: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(keys), _CHUNK):
        yield keys[start : start + _CHUNK]
