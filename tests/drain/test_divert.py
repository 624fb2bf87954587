"""Divert, exactly once: every message arrives in the review queue once, intact; crashes between
the steps and re-runs leave no duplicate and lose nothing; FIFO groups keep their order."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any

import pytest

from agentctl.aws import Aws
from agentctl.drain.divert import ORIGIN_ATTRIBUTE, MoveOptions, Mover
from agentctl.drain.ledger import MoveState, SqliteMoveLedger
from agentctl.drain.queues import resolve
from agentctl.incidents.sqlite import SqliteStore
from tests.drain.conftest import depth, put, stop_mappings, take_all

FAST = MoveOptions(workers=4, wait_seconds=0)


@pytest.fixture
def queues(seeded: Aws) -> Aws:
    stop_mappings(seeded)
    return seeded


def mover(aws: Aws, store: SqliteStore, src: str, dst: str, **kwargs: Any) -> Mover:
    return Mover(
        aws,
        SqliteMoveLedger(store),
        resolve(aws, src),
        resolve(aws, dst),
        incident_id="INC-TEST",
        options=kwargs.pop("options", FAST),
        **kwargs,
    )


def origin(message: dict[str, Any]) -> dict[str, Any]:
    return json.loads(message["MessageAttributes"][ORIGIN_ATTRIBUTE]["StringValue"])


def test_every_message_arrives_once_intact_and_the_source_is_empty(
    queues: Aws, store: SqliteStore
) -> None:
    ids = put(queues, "refund-requests", 137)
    result = mover(queues, store, "refund-requests", "refund-requests-review").run()
    assert result.ok and result.moved == 137 and result.resent == 0
    assert result.left is not None and result.left.queued == 0
    assert depth(queues, "refund-requests") == (0, 0)
    got = take_all(queues, "refund-requests-review")
    assert Counter(origin(m)["message_id"] for m in got) == Counter(ids)  # each exactly once
    for message in got:
        body = json.loads(message["Body"])
        i = body["ticket"]
        assert body["text"] == f"msg-{i}"
        attrs = message["MessageAttributes"]
        assert attrs["n"] == {"DataType": "Number", "StringValue": str(i)}
        assert attrs["blob"] == {"DataType": "Binary", "BinaryValue": bytes([i % 256, 0, 255])}
        assert origin(message)["queue"].endswith(":refund-requests")
        assert origin(message)["incident"] == "INC-TEST"


def test_second_run_moves_nothing_and_says_so(queues: Aws, store: SqliteStore) -> None:
    put(queues, "refund-requests", 12)
    assert mover(queues, store, "refund-requests", "refund-requests-review").run().moved == 12
    again = mover(queues, store, "refund-requests", "refund-requests-review").run()
    assert (again.moved, again.finished, again.resent) == (0, 0, 0)
    assert depth(queues, "refund-requests-review") == (12, 0)


def test_crash_between_send_and_delete_then_rerun_leaves_no_duplicate(
    queues: Aws, store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = put(queues, "refund-requests", 40)
    crashing = mover(
        queues,
        store,
        "refund-requests",
        "refund-requests-review",
        options=MoveOptions(workers=1, wait_seconds=0),
    )
    calls = {"n": 0}
    real_delete = Mover._delete

    def delete_then_die(self: Mover, messages: list[dict[str, Any]]) -> set[str]:
        calls["n"] += 1
        if calls["n"] == 3:  # two batches done; the third was sent, the process dies now
            raise KeyboardInterrupt("kill -9 between send and delete")
        return real_delete(self, messages)

    monkeypatch.setattr(Mover, "_delete", delete_then_die)
    with pytest.raises(KeyboardInterrupt):
        crashing.run()
    monkeypatch.setattr(Mover, "_delete", real_delete)
    ledger = SqliteMoveLedger(store)
    source = resolve(queues, "refund-requests").arn
    assert ledger.count(source, MoveState.SENT) == 10  # sent, not deleted: in flight in source
    assert depth(queues, "refund-requests-review")[0] == 30

    rerun = mover(queues, store, "refund-requests", "refund-requests-review").run()
    assert rerun.finished == 10  # deleted from the source without sending again
    assert rerun.moved == 10 and rerun.resent == 0
    assert depth(queues, "refund-requests") == (0, 0)
    got = take_all(queues, "refund-requests-review")
    assert Counter(origin(m)["message_id"] for m in got) == Counter(ids)


def test_sent_but_visible_again_is_deleted_not_resent(queues: Aws, store: SqliteStore) -> None:
    """The kept receipt handle went stale (the message became visible again): the message is
    recognised by its id when received again and only deleted."""
    ids = put(queues, "refund-requests", 5)
    ledger = SqliteMoveLedger(store)
    source = resolve(queues, "refund-requests")
    review = resolve(queues, "refund-requests-review")
    ledger.claim(source.arn, review.arn, "INC-TEST", "old-run", [(ids[0], "stale-handle")])
    ledger.settle(source.arn, MoveState.SENT, [(ids[0], "copy-id")])
    result = mover(queues, store, "refund-requests", "refund-requests-review").run()
    assert (result.moved, result.finished) == (4, 1)
    assert depth(queues, "refund-requests") == (0, 0)
    assert depth(queues, "refund-requests-review")[0] == 4


def test_crash_after_claim_before_send_resends_and_counts_it(
    queues: Aws, store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = put(queues, "refund-requests", 10)
    crashing = mover(
        queues,
        store,
        "refund-requests",
        "refund-requests-review",
        options=MoveOptions(workers=1, wait_seconds=0, visibility_timeout=900),
    )

    def die(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt("died before the send")

    monkeypatch.setattr(Mover, "_send", die)
    with pytest.raises(KeyboardInterrupt):
        crashing.run()
    monkeypatch.undo()
    assert depth(queues, "refund-requests") == (0, 10)  # invisible for 15 minutes...
    rerun = mover(queues, store, "refund-requests", "refund-requests-review").run()
    assert rerun.moved == 10  # ...but the re-run made them visible again at once
    assert rerun.resent == 10  # and says they may appear twice
    got = take_all(queues, "refund-requests-review")
    assert sorted(origin(m)["message_id"] for m in got) == sorted(ids)


def test_fifo_groups_keep_their_order_with_several_workers(
    orders_agent: Aws, store: SqliteStore
) -> None:
    stop_mappings(orders_agent)
    ids = put(orders_agent, "orders.fifo", 90)
    result = mover(
        orders_agent,
        store,
        "orders.fifo",
        "orders-review.fifo",
        options=MoveOptions(workers=6, wait_seconds=0),
    ).run()
    assert result.ok and result.moved == 90
    got = take_all(orders_agent, "orders-review.fifo")
    assert sorted(origin(m)["message_id"] for m in got) == sorted(ids)
    by_group: dict[str, list[int]] = defaultdict(list)
    for message in got:
        group = message["Attributes"]["MessageGroupId"]
        by_group[group].append(json.loads(message["Body"])["ticket"])
    assert set(by_group) == {"g0", "g1", "g2"}
    for group, tickets in by_group.items():
        assert tickets == sorted(tickets), f"group {group} out of order"
        assert len(tickets) == 30


def test_access_denied_on_the_review_queue_releases_the_batch(
    queues: Aws, store: SqliteStore, inject: Any
) -> None:
    put(queues, "refund-requests", 20)
    inject(queues, "sqs", "SendMessageBatch")
    result = mover(queues, store, "refund-requests", "refund-requests-review").run()
    assert result.error is not None
    assert "cannot send to refund-requests-review" in result.error.message
    assert "missing permission sqs:SendMessageBatch" in result.error.message
    assert result.moved == 0
    assert depth(queues, "refund-requests") == (20, 0)  # released at once: nothing stuck
    source = resolve(queues, "refund-requests").arn
    assert SqliteMoveLedger(store).count(source, MoveState.CLAIMED) == 0


def test_rejected_entry_stays_in_the_source_and_is_reported(
    queues: Aws, store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = put(queues, "refund-requests", 10)
    bad = ids[3]
    real_entry = Mover._entry

    def entry(self: Mover, entry_id: str, message: dict[str, Any]) -> dict[str, Any]:
        out = real_entry(self, entry_id, message)
        if message["MessageId"] == bad:
            # a value SQS refuses for this one entry (the only per-entry failure moto produces)
            out["DelaySeconds"] = 901
        return out

    monkeypatch.setattr(Mover, "_entry", entry)
    result = mover(queues, store, "refund-requests", "refund-requests-review").run()
    assert list(result.failed) == [bad] and result.moved == 9
    assert depth(queues, "refund-requests") == (1, 0)  # visible again after the run
    assert depth(queues, "refund-requests-review")[0] == 9


def test_a_message_with_ten_attributes_moves_without_the_origin_attribute(
    queues: Aws, store: SqliteStore
) -> None:
    sqs = queues.client("sqs")
    url = sqs.get_queue_url(QueueName="refund-requests")["QueueUrl"]
    attrs = {f"a{i}": {"DataType": "String", "StringValue": str(i)} for i in range(10)}
    sent = sqs.send_message(QueueUrl=url, MessageBody="full", MessageAttributes=attrs)
    m = mover(queues, store, "refund-requests", "refund-requests-review")
    result = m.run()
    assert (result.moved, result.without_origin) == (1, 1)
    (got,) = take_all(queues, "refund-requests-review")
    assert got["MessageAttributes"] == attrs and got["Body"] == "full"
    ledger = SqliteMoveLedger(store)
    source, review = resolve(queues, "refund-requests"), resolve(queues, "refund-requests-review")
    assert ledger.moved_to(source.arn, review.arn, [got["MessageId"]]) == {got["MessageId"]}
    assert ledger.states(source.arn, [sent["MessageId"]]) == {sent["MessageId"]: MoveState.DELETED}


def test_stop_finishes_the_current_batch_and_a_rerun_moves_the_rest(
    queues: Aws, store: SqliteStore
) -> None:
    """What Ctrl-C does: every worker finishes its batch (sent copies deleted and recorded)."""
    ids = put(queues, "refund-requests", 30)
    holder: list[Mover] = []
    first = mover(
        queues,
        store,
        "refund-requests",
        "refund-requests-review",
        options=MoveOptions(workers=1, wait_seconds=0),
        on_progress=lambda r: holder[0].stop(),
    )
    holder.append(first)
    result = first.run()
    assert result.moved == 10 and result.ok
    assert depth(queues, "refund-requests") == (20, 0)  # nothing left in flight
    rest = mover(queues, store, "refund-requests", "refund-requests-review").run()
    assert rest.moved == 20 and (rest.finished, rest.resent) == (0, 0)
    got = take_all(queues, "refund-requests-review")
    assert sorted(origin(m)["message_id"] for m in got) == sorted(ids)
