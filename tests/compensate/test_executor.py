"""The executor on moto SQS: exactly once, resumable, safe with two executors."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence

import pytest

from agentctl.aws import Aws
from agentctl.clock import FakeClock
from agentctl.compensate.executor import Executor
from agentctl.compensate.ledger import LedgerStatus, by_status
from agentctl.compensate.planner import plan_compensations
from agentctl.compensate.sqlite_ledger import SqliteLedger
from agentctl.errors import ExitCode
from agentctl.incidents.sqlite import SqliteStore
from tests.compensate.conftest import (
    REFUND_PAYLOAD,
    count,
    drain,
    email,
    make_queue,
    refund,
    spec_with,
)

FIFO = "refund-compensations.fifo"
STANDARD = "refund-compensations"


def _spec(queue: str = FIFO, **comp: object):
    return spec_with(
        {
            "sqs": {"queue": queue},
            "payload": REFUND_PAYLOAD,
            "noun": "refunds",
            "amount": "args.amount",
            "currency": "$",
            **comp,
        }
    )


def _executor(ledger, aws, spec, clock, **kw) -> Executor:
    kw.setdefault("workers", 4)
    return Executor(ledger, aws, spec, clock=clock, **kw)


def test_each_wrong_refund_is_reversed_once_and_emails_become_mitigations(
    aws: Aws, ledger: SqliteLedger, clock: FakeClock
) -> None:
    url = make_queue(aws, FIFO)
    spec = _spec()
    actions = [refund(i, amount=10.0 + i) for i in range(25)] + [email(100 + i) for i in range(5)]
    plan = plan_compensations(spec, actions)
    assert plan.headline() == "25 refunds, $550 to reverse; 5 emails to follow up"
    seen: list[tuple[int, int]] = []

    report = _executor(ledger, aws, spec, clock).run(plan, lambda d, t: seen.append((d, t)))

    assert report.completed == 25 and report.problems == [] and report.exit_code is ExitCode.OK
    messages = drain(aws, url)
    assert len(messages) == 25
    bodies = sorted((json.loads(m["Body"]) for m in messages), key=lambda b: b["amount"])
    assert bodies[0] == {
        "op": "reverse_refund",
        "refund_id": "re_0",
        "amount": 10.0,
        "original_action": "act-00000",
    }
    keys = {m["MessageAttributes"]["agentctl-idempotency-key"]["StringValue"] for m in messages}
    assert len(keys) == 25 and all(k.startswith("agentctl-comp-") for k in keys)
    assert seen[-1] == (25, 25)
    rows = list(ledger.rows("refund-agent"))
    assert by_status(rows) == {"completed": 25, "recorded": 5}

    again = _executor(ledger, aws, spec, clock).run(plan_compensations(spec, actions))
    assert again.completed == 0 and again.already_done == 25
    assert drain(aws, url) == []


def test_a_retried_action_with_the_same_key_is_compensated_once(
    aws: Aws, ledger: SqliteLedger, clock: FakeClock
) -> None:
    url = make_queue(aws, STANDARD)
    spec = _spec(STANDARD)
    first = refund(1)
    retry = refund(1, action_id="act-retry", minutes=3)  # same idempotency key
    plan = plan_compensations(spec, [first, retry])
    assert len(plan.compensations) == 1 and plan.duplicates == 1
    _executor(ledger, aws, spec, clock).run(plan)
    assert len(drain(aws, url)) == 1


def test_a_changed_payload_for_the_same_action_is_refused_not_sent(
    aws: Aws, ledger: SqliteLedger, clock: FakeClock
) -> None:
    url = make_queue(aws, STANDARD)
    actions = [refund(i) for i in range(3)]
    # First run: the queue is missing, so nothing is applied; rows stay with the first payload.
    spec = _spec("missing-queue")
    first = _executor(ledger, aws, spec, clock, retries=0).run(plan_compensations(spec, actions))
    assert len(first.failed) == 3 and first.exit_code is ExitCode.ERROR
    assert "NonExistentQueue" in first.failed[0].detail

    changed = spec_with({"sqs": {"queue": STANDARD}, "payload": '{"op": "other"}'})
    report = _executor(ledger, aws, changed, clock).run(plan_compensations(changed, actions))
    assert len(report.conflicts) == 3 and report.completed == 0
    assert "payload changed since first planned" in report.conflicts[0].detail
    assert drain(aws, url) == []


def test_a_changed_payload_after_completion_is_already_done_not_a_conflict(
    aws: Aws, ledger: SqliteLedger, clock: FakeClock
) -> None:
    """A rollback that finished, re-run after the spec changed (a new payload template, effect
    extractors that now fill `effects`): nothing is sent again and nothing is an error."""
    url = make_queue(aws, STANDARD)
    actions = [refund(i) for i in range(3)]
    spec = _spec(STANDARD)
    first = _executor(ledger, aws, spec, clock).run(plan_compensations(spec, actions))
    assert first.completed == 3 and len(drain(aws, url)) == 3

    changed = spec_with({"sqs": {"queue": STANDARD}, "payload": '{"op": "other"}'})
    again = _executor(ledger, aws, changed, clock).run(plan_compensations(changed, actions))
    assert (again.already_done, again.completed, again.conflicts) == (3, 0, [])
    assert again.exit_code is ExitCode.OK
    assert drain(aws, url) == []


def test_failed_before_effect_is_retried_by_the_next_run(
    aws: Aws, ledger: SqliteLedger, clock: FakeClock
) -> None:
    spec = _spec(STANDARD)
    actions = [refund(i) for i in range(12)]
    report = _executor(ledger, aws, spec, clock).run(plan_compensations(spec, actions))
    assert len(report.failed) == 12 and report.unknown == []
    rows = list(ledger.rows("refund-agent"))
    assert {r.status for r in rows} == {LedgerStatus.FAILED}
    assert all(r.attempts == 3 for r in rows)  # 1 try + 2 retries in the run, with backoff

    url = make_queue(aws, STANDARD)
    again = _executor(ledger, aws, spec, clock).run(plan_compensations(spec, actions))
    assert again.completed == 12 and again.exit_code is ExitCode.OK
    assert len(drain(aws, url)) == 12


class Crash(BaseException):
    """Stands in for kill -9: not an Exception, so nothing in the executor handles it."""


def _crash_at(point: str, after_batches: int = 1):
    calls = {"n": 0}

    def checkpoint(name: str, keys: Sequence[str]) -> None:
        if name == point:
            calls["n"] += 1
            if calls["n"] > after_batches:
                raise Crash(point)

    return checkpoint


@pytest.mark.parametrize("queue", [FIFO, STANDARD])
@pytest.mark.parametrize("point", ["before_claim", "after_claim", "after_dispatch", "after_finish"])
def test_crash_at_each_point_then_resume_sends_each_compensation_once(
    aws: Aws, ledger: SqliteLedger, clock: FakeClock, point: str, queue: str
) -> None:
    url = make_queue(aws, queue)
    spec = _spec(queue)
    actions = [refund(i) for i in range(35)]  # four batches of up to 10
    with pytest.raises(Crash):
        _executor(ledger, aws, spec, clock, workers=1, checkpoint=_crash_at(point)).run(
            plan_compensations(spec, actions)
        )
    sent_before = count(aws, url)
    # one batch of 10 went through; the crash hit the second one
    assert sent_before == (20 if point in ("after_dispatch", "after_finish") else 10)

    # The same command again, right away: the dead run's lease still holds its batch, so the
    # resumed run waits it out (on the fake clock) and then takes the batch over.
    report = _executor(ledger, aws, spec, clock).run(plan_compensations(spec, actions))
    messages = drain(aws, url)
    keys = {m["MessageAttributes"]["agentctl-idempotency-key"]["StringValue"] for m in messages}
    assert len(messages) == len(keys) == 35  # every action once, none twice
    rows = {r.key: r for r in ledger.rows("refund-agent")}
    if point == "after_dispatch" and queue == STANDARD:
        # Sent, then killed before the outcome was written: a standard queue neither dedupes
        # nor can be asked, so those 10 are listed as unknown and NOT re-sent.
        assert len(report.unknown) == 10 and report.exit_code is ExitCode.PARTIAL
        assert "not re-sent" in report.unknown[0].detail
        unknown = [r for r in rows.values() if r.status is LedgerStatus.UNKNOWN]
        assert len(unknown) == 10
        for row in unknown:  # the operator checked downstream: they were applied
            ledger.resolve(row.key, applied=True, by="oncall")
        final = _executor(ledger, aws, spec, clock).run(plan_compensations(spec, actions))
        assert final.exit_code is ExitCode.OK and drain(aws, url) == []
    else:
        assert report.exit_code is ExitCode.OK, report.to_dict()
        if point == "after_dispatch":  # FIFO: re-sent with the same dedup id, dropped by SQS
            assert report.resent_deduped == 10
    assert {r.status for r in ledger.rows("refund-agent")} == {LedgerStatus.COMPLETED}


def test_two_executors_at_once_do_not_double_compensate(
    aws: Aws, store: SqliteStore, second_store: SqliteStore, clock: FakeClock
) -> None:
    url = make_queue(aws, STANDARD)  # no dedup downstream: only the ledger prevents doubles
    spec = _spec(STANDARD)
    actions = [refund(i) for i in range(200)]
    reports = []
    barrier = threading.Barrier(2)

    def run(s: SqliteStore, who: str) -> None:
        ledger = SqliteLedger(s, clock)
        executor = _executor(ledger, aws, spec, clock, owner=who, wait_for_held=False)
        plan = plan_compensations(spec, actions)
        barrier.wait()
        reports.append(executor.run(plan))

    threads = [
        threading.Thread(target=run, args=(store, "alice")),
        threading.Thread(target=run, args=(second_store, "bob")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    messages = drain(aws, url)
    assert len(messages) == 200
    keys = [m["MessageAttributes"]["agentctl-idempotency-key"]["StringValue"] for m in messages]
    assert len(set(keys)) == 200
    assert sum(r.completed for r in reports) == 200
    for r in reports:  # each accounts for every item: done by it, by the other, or in flight
        assert r.unknown == [] and r.failed == []
        assert r.completed + r.already_done + len(r.held) == 200
    # A third run confirms: nothing left, nothing sent.
    final = _executor(SqliteLedger(store, clock), aws, spec, clock).run(
        plan_compensations(spec, actions)
    )
    assert final.already_done == 200 and drain(aws, url) == []


def test_throttling_is_retried_in_the_run_and_access_denied_fails_with_the_reason(
    aws: Aws, ledger: SqliteLedger, clock: FakeClock
) -> None:
    # moto never throttles nor denies: botocore's Stubber answers these calls only.
    from botocore.stub import Stubber

    url = make_queue(aws, STANDARD)
    spec = _spec(url)  # a queue URL: no GetQueueUrl call
    client = aws.client("sqs", retries=0)
    ok = {"Successful": [{"Id": "0", "MessageId": "m", "MD5OfMessageBody": "x"}], "Failed": []}
    started = clock.monotonic()
    with Stubber(client) as stub:
        stub.add_client_error("send_message_batch", "ThrottlingException", http_status_code=400)
        stub.add_response("send_message_batch", ok)
        report = _executor(ledger, aws, spec, clock, workers=1).run(
            plan_compensations(spec, [refund(1)])
        )
        stub.assert_no_pending_responses()
    assert report.completed == 1 and report.exit_code is ExitCode.OK
    assert clock.monotonic() - started >= 0.5  # backed off through the clock
    row = next(ledger.rows("refund-agent"))
    assert row.attempts == 2 and row.status is LedgerStatus.COMPLETED

    with Stubber(client) as stub:
        for _ in range(3):
            stub.add_client_error(
                "send_message_batch",
                "AccessDenied",
                "not authorized to perform: sqs:SendMessage",
                http_status_code=403,
            )
        denied = _executor(ledger, aws, spec, clock, workers=1).run(
            plan_compensations(spec, [refund(2)])
        )
    assert denied.exit_code is ExitCode.ERROR
    assert "rejected (403) AccessDenied" in denied.failed[0].detail
    assert ledger.get(denied.failed[0].key).status is LedgerStatus.FAILED  # type: ignore[union-attr]


def test_ledger_rows_cannot_be_deleted(store: SqliteStore, ledger: SqliteLedger) -> None:
    import sqlite3

    spec = _spec(STANDARD)
    ledger.register(plan_compensations(spec, [refund(1)]).compensations)
    with pytest.raises(sqlite3.DatabaseError, match="never deleted"):
        store.conn.execute("DELETE FROM compensation_ledger")
    assert len(list(ledger.rows("refund-agent"))) == 1
