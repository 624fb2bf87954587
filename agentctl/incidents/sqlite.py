"""The embedded incident store: one SQLite file.

Every journal append is its own committed transaction (WAL, ``synchronous=FULL``), so a
``kill -9`` loses nothing already written. The journal table refuses UPDATE and DELETE
(triggers): it is append-only by construction, not by convention.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from agentctl.clock import SystemClock
from agentctl.errors import IncidentNotFoundError, StoreError
from agentctl.incidents.models import Event, Incident, IncidentStatus, JournalEntry, Operator

SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
    id TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    status TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    opened_by TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    closed_at TEXT,
    closed_by TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS one_open_incident_per_agent
    ON incidents(agent) WHERE status = 'open';
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id TEXT NOT NULL REFERENCES incidents(id),
    run_id TEXT NOT NULL,
    at TEXT NOT NULL,
    operator_arn TEXT NOT NULL,
    operator_user TEXT NOT NULL,
    phase TEXT NOT NULL,
    event TEXT NOT NULL,
    step TEXT NOT NULL,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    inputs TEXT,
    before TEXT,
    after TEXT,
    request_ids TEXT NOT NULL,
    error TEXT,
    reason TEXT NOT NULL,
    message TEXT NOT NULL,
    duration_ms REAL
);
CREATE INDEX IF NOT EXISTS journal_by_incident ON journal(incident_id, seq);
CREATE TRIGGER IF NOT EXISTS journal_no_update BEFORE UPDATE ON journal
    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER IF NOT EXISTS journal_no_delete BEFORE DELETE ON journal
    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
"""


def _wal(conn: sqlite3.Connection, clock: SystemClock | None = None) -> None:
    """Put the file in WAL mode (persistent: done once per file). Switching needs the file to
    itself and SQLite answers "database is locked" at once, without its busy timeout, when two
    processes open a new store together (two on-calls, a script): retried for up to 30 s."""
    clock = clock or SystemClock()
    deadline = clock.monotonic() + 30
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or clock.monotonic() > deadline:
                raise
            clock.sleep(0.02)


class SqliteStore:
    """Incidents and journal in one SQLite file. Safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(
                str(path), check_same_thread=False, isolation_level=None, timeout=30
            )
            _wal(self.conn)
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.conn.executescript(SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(
                f"cannot open the incident store {path}: {exc}",
                hint="pass --store PATH or set AGENTCTL_STORE to a writable file",
            ) from exc
        self.lock = threading.RLock()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An immediate (write-locked) transaction: serialises writers across processes.

        SQLite failures (locked past the timeout, disk full, a corrupt file) become
        :class:`StoreError`; constraint violations stay ``sqlite3.IntegrityError``.
        """
        with self.lock, _store_errors(self.path):
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            else:
                self.conn.execute("COMMIT")

    # -- incidents -------------------------------------------------------------------------
    def open_or_join(
        self, agent: str, *, at: datetime, by: str, reason: str = ""
    ) -> tuple[Incident, bool]:
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT * FROM incidents WHERE agent = ? AND status = 'open'", (agent,)
            ).fetchone()
            if row is not None:
                return _incident(row), False
            (count,) = conn.execute(
                "SELECT COUNT(*) FROM incidents WHERE id LIKE ?", (Incident.day_prefix(at) + "%",)
            ).fetchone()
            incident = Incident.opened(agent, count + 1, at=at, by=by, reason=reason)
            conn.execute(
                "INSERT INTO incidents (id, agent, status, opened_at, opened_by, reason)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (incident.id, agent, incident.status.value, at.isoformat(), by, reason),
            )
            return incident, True

    def find_open(self, agent: str) -> Incident | None:
        with self.lock, _store_errors(self.path):
            row = self.conn.execute(
                "SELECT * FROM incidents WHERE agent = ? AND status = 'open'", (agent,)
            ).fetchone()
        return _incident(row) if row else None

    def get(self, incident_id: str) -> Incident:
        with self.lock, _store_errors(self.path):
            row = self.conn.execute(
                "SELECT * FROM incidents WHERE id = ?", (incident_id,)
            ).fetchone()
        if row is None:
            raise IncidentNotFoundError(
                f"no incident {incident_id!r} in {self.path}",
                hint="`agentctl incidents list` shows the known ones",
            )
        return _incident(row)

    def list_incidents(
        self, *, agent: str | None = None, status: IncidentStatus | None = None, limit: int = 100
    ) -> list[Incident]:
        query = "SELECT * FROM incidents WHERE 1=1"
        args: list[Any] = []
        if agent:
            query += " AND agent = ?"
            args.append(agent)
        if status:
            query += " AND status = ?"
            args.append(status.value)
        query += " ORDER BY opened_at DESC, id DESC LIMIT ?"
        args.append(limit)
        with self.lock, _store_errors(self.path):
            rows = self.conn.execute(query, args).fetchall()
        return [_incident(r) for r in rows]

    def close(self, incident_id: str, *, at: datetime, by: str) -> Incident:
        incident = self.get(incident_id)
        if incident.status is IncidentStatus.CLOSED:
            return incident
        with self.transaction() as conn:
            conn.execute(
                "UPDATE incidents SET status = 'closed', closed_at = ?, closed_by = ? WHERE id = ?",
                (at.isoformat(), by, incident_id),
            )
        return self.get(incident_id)

    # -- journal ---------------------------------------------------------------------------
    def append(self, entry: JournalEntry) -> JournalEntry:
        values = (
            entry.incident_id,
            entry.run_id,
            entry.at.isoformat(),
            entry.operator.arn,
            entry.operator.user,
            entry.phase,
            entry.event.value,
            entry.step,
            entry.kind,
            entry.target,
            _json(entry.inputs),
            _json(entry.before),
            _json(entry.after),
            json.dumps(entry.request_ids),
            entry.error,
            entry.reason,
            entry.message,
            entry.duration_ms,
        )
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO journal (incident_id, run_id, at, operator_arn, operator_user, phase,"
                " event, step, kind, target, inputs, before, after, request_ids, error, reason,"
                " message, duration_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                values,
            )
            seq = cursor.lastrowid
        from dataclasses import replace

        return replace(entry, seq=seq)

    def journal(self, incident_id: str) -> list[JournalEntry]:
        with self.lock, _store_errors(self.path):
            rows = self.conn.execute(
                "SELECT * FROM journal WHERE incident_id = ? ORDER BY seq", (incident_id,)
            ).fetchall()
        return [_entry(r) for r in rows]

    def close_connection(self) -> None:
        with self.lock:
            self.conn.close()


@contextmanager
def _store_errors(path: Path) -> Iterator[None]:
    try:
        yield
    except sqlite3.IntegrityError:
        raise
    except sqlite3.Error as exc:
        raise StoreError(
            f"the incident store {path} failed: {exc}",
            hint="check disk space and that no other process holds it locked; "
            "what was journaled before is safe",
        ) from exc


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def _incident(row: tuple[Any, ...]) -> Incident:
    return Incident(
        id=row[0],
        agent=row[1],
        status=IncidentStatus(row[2]),
        opened_at=datetime.fromisoformat(row[3]),
        opened_by=row[4],
        reason=row[5],
        closed_at=datetime.fromisoformat(row[6]) if row[6] else None,
        closed_by=row[7],
    )


def _entry(row: tuple[Any, ...]) -> JournalEntry:
    return JournalEntry(
        seq=row[0],
        incident_id=row[1],
        run_id=row[2],
        at=datetime.fromisoformat(row[3]),
        operator=Operator(arn=row[4], user=row[5]),
        phase=row[6],
        event=Event(row[7]),
        step=row[8],
        kind=row[9],
        target=row[10],
        inputs=json.loads(row[11]) if row[11] else None,
        before=json.loads(row[12]) if row[12] else None,
        after=json.loads(row[13]) if row[13] else None,
        request_ids=json.loads(row[14]),
        error=row[15],
        reason=row[16],
        message=row[17],
        duration_ms=row[18],
    )
