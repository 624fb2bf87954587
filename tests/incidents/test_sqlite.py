"""The SQLite incident store: ids, open/join/close, append-only journal, durability."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agentctl.errors import BadInputError, IncidentNotFoundError, StoreError
from agentctl.incidents.models import Event, IncidentStatus, JournalEntry, Operator
from agentctl.incidents.sqlite import SqliteStore
from agentctl.incidents.store import open_store

AT = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
OP = Operator(arn="arn:aws:sts::1:assumed-role/oncall/ana", user="ana")


def entry(incident_id: str, step: str = "s", event: Event = Event.INTENT) -> JournalEntry:
    return JournalEntry(
        incident_id=incident_id,
        run_id="r1",
        at=AT,
        operator=OP,
        phase="contain",
        event=event,
        step=step,
        kind="iam.deny_tools",
        target="iam:role/x",
        before={"policy": None},
        request_ids=["req-1"],
        reason="why",
    )


def test_ids_are_per_day_sequences_and_open_incident_is_joined(store: SqliteStore) -> None:
    first, new = store.open_or_join("refund-agent", at=AT, by="ana", reason="bad refunds")
    assert (first.id, new) == ("INC-20261124-0001", True)
    joined, new = store.open_or_join("refund-agent", at=AT, by="bob")
    assert (joined.id, new) == (first.id, False)
    other, _ = store.open_or_join("ticket-triager", at=AT, by="ana")
    assert other.id == "INC-20261124-0002"
    store.close(first.id, at=AT, by="ana")
    assert store.get(first.id).status is IncidentStatus.CLOSED
    again, new = store.open_or_join("refund-agent", at=AT, by="ana")
    assert (again.id, new) == ("INC-20261124-0003", True)
    assert [i.id for i in store.list_incidents(agent="refund-agent")] == [again.id, first.id]
    assert [i.id for i in store.list_incidents(status=IncidentStatus.OPEN)] == [
        again.id,
        other.id,
    ]


@pytest.mark.parametrize("attempt", range(5))
def test_concurrent_contains_share_one_incident(tmp_path: Path, attempt: int) -> None:
    """Eight openers of a store that does not exist yet, released together: every one opens it
    (switching a new file to WAL answers "locked" at once, without the busy timeout) and all
    join one incident."""
    path = tmp_path / "shared.db"
    results: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def contain() -> None:
        start.wait()
        try:
            s = SqliteStore(path)  # a separate connection, as a second process would have
            results.append(s.open_or_join("refund-agent", at=AT, by="x")[0].id)
            s.close_connection()
        except BaseException as exc:  # reported below: a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=contain) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results == ["INC-20261124-0001"] * 8


def test_journal_round_trip_and_is_append_only(store: SqliteStore) -> None:
    incident, _ = store.open_or_join("refund-agent", at=AT, by="ana")
    written = store.append(entry(incident.id))
    assert written.seq == 1
    [read] = store.journal(incident.id)
    assert read == written
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.conn.execute("UPDATE journal SET error = 'x'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.conn.execute("DELETE FROM journal")
    assert len(store.journal(incident.id)) == 1


def test_unknown_incident(store: SqliteStore) -> None:
    with pytest.raises(IncidentNotFoundError):
        store.get("INC-20990101-0001")


def test_kill_9_loses_nothing_already_written(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    script = f"""
import os, signal
from datetime import UTC, datetime
from agentctl.incidents.sqlite import SqliteStore
from agentctl.incidents.models import Event, JournalEntry, Operator
from pathlib import Path
s = SqliteStore(Path({str(path)!r}))
inc, _ = s.open_or_join("a", at=datetime.now(UTC), by="x")
for i in range(25):
    s.append(JournalEntry(incident_id=inc.id, run_id="r", at=datetime.now(UTC),
             operator=Operator("arn", "u"), phase="contain", event=Event.INTENT, step=f"s{{i}}"))
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", script], check=False)
    assert proc.returncode == -signal.SIGKILL
    store = SqliteStore(path)
    [incident] = store.list_incidents()
    assert [e.step for e in store.journal(incident.id)] == [f"s{i}" for i in range(25)]


def test_open_store_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = open_store(f"sqlite://{tmp_path}/a.db")
    assert isinstance(s, SqliteStore) and s.path == tmp_path / "a.db"
    monkeypatch.setenv("AGENTCTL_STORE", str(tmp_path / "env.db"))
    assert open_store().path == tmp_path / "env.db"  # type: ignore[attr-defined]
    monkeypatch.delenv("AGENTCTL_STORE")
    default = open_store()
    assert default.path == Path(os.environ["XDG_STATE_HOME"]) / "agentctl" / "agentctl.db"  # type: ignore[attr-defined]
    with pytest.raises(BadInputError, match="unsupported store"):
        open_store("redis://x")


def test_unwritable_store_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="cannot open the incident store"):
        SqliteStore(blocker / "sub" / "x.db")
