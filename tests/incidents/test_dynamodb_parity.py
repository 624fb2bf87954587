"""One suite, two backends: the SQLite file and the DynamoDB table (moto) must behave the same
for incidents, the journal, the compensation ledger and the release history."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agentctl.aws import Aws
from agentctl.clock import FakeClock
from agentctl.compensate.ledger import Finish, Ledger, LedgerRow, LedgerStatus
from agentctl.errors import IncidentNotFoundError, StoreError
from agentctl.incidents.dynamodb import DynamoStore, create_table, init_store
from agentctl.incidents.models import Event, IncidentStatus, JournalEntry, Operator
from agentctl.incidents.sqlite import SqliteStore
from agentctl.incidents.store import open_store
from agentctl.releases.catalog import ReleaseCatalog
from agentctl.releases.model import Mark, Release

AT = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
OP = Operator(arn="arn:aws:sts::123456789012:assumed-role/oncall/alice", user="alice")


@dataclass
class Backend:
    name: str
    store: Any
    ledger: Ledger
    catalog: ReleaseCatalog
    other: Any  # a second handle on the same storage (another machine / process)


@pytest.fixture
def atomic_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto evaluates a condition and writes without a lock, so two threads can both pass the
    same condition; real DynamoDB applies each conditional write atomically. Serialise moto's
    writes to give it that property (our code is what is under test, not moto's locking)."""
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    for name in ("put_item", "update_item", "transact_write_items"):
        original = getattr(DynamoDBBackend, name)

        def locked(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return __original(self, *args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, name, locked)


@pytest.fixture(params=["sqlite", "dynamodb"])
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock, atomic_moto: None
) -> Iterator[Backend]:
    if request.param == "sqlite":
        from agentctl.compensate.sqlite_ledger import SqliteLedger
        from agentctl.releases.catalog import SqliteCatalog

        store = SqliteStore(tmp_path / "s.db")
        other = SqliteStore(tmp_path / "s.db")
        yield Backend("sqlite", store, SqliteLedger(store, clock), SqliteCatalog(store), other)
        store.close_connection()
        other.close_connection()
    else:
        aws: Aws = request.getfixturevalue("aws")
        assert create_table(aws.client("dynamodb"), "agentctl") is True
        store = open_store("dynamodb://agentctl", aws=aws)
        assert isinstance(store, DynamoStore)
        other = DynamoStore("agentctl", aws.client("dynamodb"))
        yield Backend("dynamodb", store, store.ledger(clock), store.releases(), other)


def entry(incident_id: str, n: int, **kw: Any) -> JournalEntry:
    base: dict[str, Any] = {
        "incident_id": incident_id,
        "run_id": "run1",
        "at": AT + timedelta(seconds=n),
        "operator": OP,
        "phase": "contain",
        "event": Event.INTENT,
        "step": f"s{n}",
        "kind": "iam.deny_tools",
        "target": "role/x",
        "before": {"n": n, "nested": {"ok": True}},
    }
    base.update(kw)
    return JournalEntry(**base)


# -- incidents and journal ---------------------------------------------------------------------
def test_one_open_incident_per_agent_then_a_new_one(backend: Backend) -> None:
    s = backend.store
    first, opened = s.open_or_join("refund-agent", at=AT, by="alice", reason="bad refunds")
    assert opened and first.id == "INC-20261124-0001"
    again, opened = backend.other.open_or_join("refund-agent", at=AT, by="bob")
    assert not opened and again == first
    other, _ = s.open_or_join("ticket-triager", at=AT, by="alice")
    assert other.id == "INC-20261124-0002"
    closed = s.close(first.id, at=AT + timedelta(hours=1), by="alice")
    assert closed.status is IncidentStatus.CLOSED and closed.closed_by == "alice"
    assert s.find_open("refund-agent") is None
    assert s.close(first.id, at=AT, by="x").closed_by == "alice"  # closing twice: no change
    new, opened = s.open_or_join("refund-agent", at=AT + timedelta(hours=2), by="alice")
    assert opened and new.id == "INC-20261124-0003"
    listed = s.list_incidents(agent="refund-agent")
    assert [i.id for i in listed] == [new.id, first.id]
    assert {i.id for i in s.list_incidents(status=IncidentStatus.OPEN)} == {new.id, other.id}
    with pytest.raises(IncidentNotFoundError):
        s.get("INC-19990101-0001")


def test_two_on_calls_opening_at_once_share_one_incident(backend: Backend) -> None:
    results: list[Any] = []
    barrier = threading.Barrier(2)

    def go(store: Any, who: str) -> None:
        barrier.wait()
        results.append(store.open_or_join("refund-agent", at=AT, by=who))

    threads = [
        threading.Thread(target=go, args=(backend.store, "alice")),
        threading.Thread(target=go, args=(backend.other, "bob")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({inc.id for inc, _ in results}) == 1
    assert sorted(opened for _, opened in results) == [False, True]


def test_journal_is_ordered_and_round_trips(backend: Backend) -> None:
    s = backend.store
    incident, _ = s.open_or_join("refund-agent", at=AT, by="alice")
    written = [s.append(entry(incident.id, n)) for n in range(3)]
    written.append(
        backend.other.append(
            entry(incident.id, 3, event=Event.NOTE, request_ids=["r1"], duration_ms=1.5)
        )
    )
    assert [e.seq for e in written] == sorted({e.seq for e in written})
    got = s.journal(incident.id)
    assert [e.step for e in got] == ["s0", "s1", "s2", "s3"]
    assert got[1].before == {"n": 1, "nested": {"ok": True}}
    assert got[3].event is Event.NOTE and got[3].request_ids == ["r1"]
    assert got[3].duration_ms == 1.5 and got[0].operator == OP
    assert got[0].at == AT


def test_concurrent_appends_lose_nothing(backend: Backend) -> None:
    incident, _ = backend.store.open_or_join("refund-agent", at=AT, by="alice")

    def write(store: Any, base: int) -> None:
        for n in range(10):
            store.append(entry(incident.id, base + n))

    threads = [
        threading.Thread(target=write, args=(backend.store, 0)),
        threading.Thread(target=write, args=(backend.other, 100)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = backend.store.journal(incident.id)
    assert len(got) == 20 and len({e.seq for e in got}) == 20


# -- ledger ----------------------------------------------------------------------------------------
def row(i: int, payload: str = '{"a":1}', status: LedgerStatus = LedgerStatus.PENDING) -> LedgerRow:
    return LedgerRow(
        key=f"{i:064x}",
        agent="refund-agent",
        tool="issue_refund",
        kind="sqs",
        action_key=f"ik1-{i}",
        action_id=f"act-{i}",
        dispatch_key=f"agentctl-comp-{i}",
        payload=payload,
        payload_hash=str(hash(payload)),
        status=status,
        action_ts=f"2026-11-24T01:00:{i:02d}+00:00",
        amount=12.5,
    )


def test_ledger_register_is_idempotent_and_detects_payload_changes(backend: Backend) -> None:
    ledger = backend.ledger
    first = ledger.register([row(1), row(2), row(3, status=LedgerStatus.RECORDED)])
    assert first.created == 3 and not first.conflicts
    again = ledger.register([row(1), row(2, payload='{"a":2}')])
    assert again.created == 0 and list(again.conflicts) == [row(2).key]
    stored = ledger.get(row(1).key)
    assert stored is not None and stored.amount == 12.5 and stored.status is LedgerStatus.PENDING
    assert [r.action_id for r in ledger.rows("refund-agent")] == ["act-1", "act-2", "act-3"]


def test_ledger_claim_lease_fence_finish(backend: Backend, clock: FakeClock) -> None:
    ledger = backend.ledger
    keys = [row(i).key for i in range(4)]
    ledger.register([row(i) for i in range(4)])
    alice = ledger.claim(keys, "alice", 60)
    assert {r.key for r in alice} == set(keys)
    assert ledger.claim(keys, "bob", 60) == []  # held
    assert ledger.mark_dispatching(keys[:2], "bob") == set()  # not the owner
    assert ledger.mark_dispatching(keys[:3], "alice") == set(keys[:3])
    ledger.finish(
        [
            Finish(keys[0], LedgerStatus.COMPLETED, result="sent"),
            Finish(keys[1], LedgerStatus.FAILED, error="rejected"),
            Finish(keys[2], LedgerStatus.UNKNOWN, error="timeout"),
        ],
        "alice",
    )
    rows = {r.key: r for r in ledger.get_many(keys)}
    assert rows[keys[0]].status is LedgerStatus.COMPLETED and rows[keys[0]].result == "sent"
    assert rows[keys[1]].status is LedgerStatus.FAILED and not rows[keys[1]].dispatch_pending
    assert rows[keys[2]].status is LedgerStatus.UNKNOWN and rows[keys[2]].dispatch_pending
    assert rows[keys[2]].attempts == 1 and rows[keys[2]].dispatched_at is not None
    assert rows[keys[3]].status is LedgerStatus.IN_PROGRESS and rows[keys[3]].owner == "alice"
    # bob may take the failed and the unknown (to reconcile) at once, the held one after its lease
    taken = {r.key: r for r in ledger.claim(keys, "bob", 60)}
    assert set(taken) == {keys[1], keys[2]}
    assert taken[keys[2]].dispatch_pending  # bob learns it was dispatched before
    clock.advance(61)
    # bob's claims and alice's lapsed: carol takes all three (keys[0] is completed)
    assert {r.key for r in ledger.claim(keys, "carol", 60)} == {keys[1], keys[2], keys[3]}
    first_dispatch = rows[keys[2]].dispatched_at
    assert ledger.mark_dispatching([keys[2]], "bob") == set()  # bob's lease lapsed: fenced
    got = ledger.get(keys[2])
    assert got is not None and got.dispatched_at == first_dispatch


def test_ledger_resolve_unknown_and_completed_is_final(backend: Backend) -> None:
    ledger = backend.ledger
    ledger.register([row(1)])
    key = row(1).key
    ledger.claim([key], "alice", 60)
    ledger.mark_dispatching([key], "alice")
    ledger.finish([Finish(key, LedgerStatus.UNKNOWN, error="timeout")], "alice")
    resolved = ledger.resolve(key, applied=True, by="alice")
    assert resolved.status is LedgerStatus.COMPLETED and "resolved by alice" in str(resolved.result)
    assert ledger.claim([key], "bob", 60) == []
    ledger.finish([Finish(key, LedgerStatus.COMPLETED, result="again")], "bob")
    final = ledger.get(key)
    assert final is not None and final.result == resolved.result  # not overwritten


def test_two_claimers_race_for_the_same_rows(backend: Backend, clock: FakeClock) -> None:
    from agentctl.compensate.rollback import ledger_for

    ledgers = [backend.ledger, ledger_for(backend.other, clock)]
    rows = [row(i) for i in range(40)]
    ledgers[0].register(rows)
    got: list[list[LedgerRow]] = [[], []]
    barrier = threading.Barrier(2)

    def go(i: int) -> None:
        barrier.wait()
        for r in rows:
            got[i].extend(ledgers[i].claim([r.key], f"owner{i}", 60))

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [r.key for r in got[0]] + [r.key for r in got[1]]
    assert sorted(claimed) == sorted(r.key for r in rows)  # each exactly once


# -- releases -------------------------------------------------------------------------------------
def test_release_history_and_marks(backend: Backend) -> None:
    cat = backend.catalog
    a = Release.build("refund-agent", "m-v1", "sha256:p", "sha256:t", at=AT, by="alice")
    b = Release.build(
        "refund-agent", "m-v2", "sha256:p", "sha256:t", at=AT + timedelta(minutes=1), by="bob"
    )
    assert cat.record(a)[1] and cat.record(b)[1] and not cat.record(a)[1]
    cat.mark("refund-agent", a.id[:10], Mark.GOOD, by="alice")
    assert [r.id for r in cat.list("refund-agent")] == [b.id, a.id]
    assert cat.last_known_good("refund-agent").id == a.id
    assert cat.agent_of(b.id) == "refund-agent"


# -- store init ----------------------------------------------------------------------
def test_store_init_creates_once(aws: Aws, tmp_path: Path) -> None:
    assert init_store("dynamodb://team-incidents", aws) == {
        "store": "dynamodb://team-incidents",
        "created": True,
    }
    assert init_store("dynamodb://team-incidents", aws)["created"] is False
    assert init_store(str(tmp_path / "a.db"), aws)["created"] is True
    assert init_store(str(tmp_path / "a.db"), aws)["created"] is False


def test_a_missing_table_says_how_to_create_it(aws: Aws) -> None:
    store = open_store("dynamodb://nope", aws=aws)
    with pytest.raises(StoreError, match="table nope does not exist") as caught:
        store.find_open("refund-agent")
    assert "agentctl store init --store dynamodb://nope" in (caught.value.hint or "")


# -- the executor on each backend ------------------------------------------------------------------
@pytest.mark.parametrize("point", ["after_claim", "after_dispatch"])
def test_crash_and_resume_exactly_once_on_each_backend(
    backend: Backend, aws: Aws, clock: FakeClock, point: str
) -> None:
    from agentctl.compensate.executor import Executor
    from agentctl.compensate.planner import plan_compensations
    from tests.compensate.conftest import REFUND_PAYLOAD, drain, make_queue, refund, spec_with
    from tests.compensate.test_executor import Crash, _crash_at

    url = make_queue(aws, "parity.fifo")
    spec = spec_with({"sqs": {"queue": "parity.fifo"}, "payload": REFUND_PAYLOAD})
    actions = [refund(i) for i in range(25)]
    with pytest.raises(Crash):
        Executor(
            backend.ledger, aws, spec, clock=clock, workers=1, checkpoint=_crash_at(point)
        ).run(plan_compensations(spec, actions))
    report = Executor(backend.ledger, aws, spec, clock=clock, workers=4).run(
        plan_compensations(spec, actions)
    )
    assert report.problems == [] and report.completed + report.already_done == 25
    messages = drain(aws, url)
    assert len(messages) == 25
    assert {r.status for r in backend.ledger.rows("refund-agent")} == {LedgerStatus.COMPLETED}
