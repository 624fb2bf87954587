"""Fixtures for compensation tests: an agent spec with every kind, action records, queues."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentctl.aws import Aws
from agentctl.clock import FakeClock
from agentctl.compensate.sqlite_ledger import SqliteLedger
from agentctl.incidents.sqlite import SqliteStore
from agentctl.spec.loader import parse_spec
from agentctl.spec.models import AgentSpec
from agentctl.trace.records import ActionRecord

T0 = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)

REFUND_PAYLOAD = (
    '{"op": "reverse_refund", "refund_id": {{ result.refund_id }}, '
    '"amount": {{ args.amount }}, "original_action": {{ action.action_id }}}'
)


def spec_with(compensation: dict[str, Any] | None = None, **extra: Any) -> AgentSpec:
    """The refund agent with ``issue_refund``'s compensation replaced."""
    doc: dict[str, Any] = {
        "version": 1,
        "name": "refund-agent",
        "owner": "payments",
        "role": "refund-agent-role",
        "tools": [
            {"name": "lookup_order", "side_effects": False},
            {
                "name": "issue_refund",
                "side_effects": True,
                "compensation": compensation
                or {
                    "sqs": {"queue": "refund-compensations.fifo"},
                    "payload": REFUND_PAYLOAD,
                    "noun": "refunds",
                    "amount": "args.amount",
                    "currency": "$",
                },
            },
            {
                "name": "send_email",
                "side_effects": True,
                "mitigation": {
                    "kind": "follow_up",
                    "description": "Send a correction",
                    "details": '{"to": {{ args.to }}}',
                    "noun": "emails",
                },
            },
        ],
        **extra,
    }
    return parse_spec(yaml.safe_dump(doc), "test-spec.yaml")


def refund(i: int, *, amount: float = 40.0, minutes: int = 0, **changes: Any) -> ActionRecord:
    data: dict[str, Any] = {
        "agent": "refund-agent",
        "trace_id": f"{i:032x}",
        "span_id": f"{i:016x}",
        "ts": T0 + timedelta(minutes=minutes, seconds=i),
        "action_id": f"act-{i:05d}",
        "unit_of_work": f"T-{i}",
        "tool": "issue_refund",
        "args": {"order_id": f"o-{i}", "amount": amount},
        "result": {"refund_id": f"re_{i}"},
        "status": "executed",
        "idempotency_key": f"ik1-{i:032x}",
        "effects": [
            {
                "system": "payments",
                "resource_type": "refund",
                "resource_id": f"re_{i}",
                "operation": "create",
                "reversible": True,
            }
        ],
    }
    data.update(changes)
    return ActionRecord.model_validate(data)


def email(i: int, **changes: Any) -> ActionRecord:
    data: dict[str, Any] = {
        "tool": "send_email",
        "args": {"to": f"c{i}@example.com", "subject": "Your refund"},
        "result": {"message_id": f"m-{i}"},
        "idempotency_key": f"ik1-e{i:031x}",
        "action_id": f"email-{i:05d}",
        "effects": [],
    }
    data.update(changes)
    return refund(i, **data)


@pytest.fixture
def ledger(store: SqliteStore, clock: FakeClock) -> SqliteLedger:
    return SqliteLedger(store, clock)


@pytest.fixture
def second_store(tmp_path: Path) -> Iterator[SqliteStore]:
    """Another connection to the same file: another process's view."""
    s = SqliteStore(tmp_path / "incidents.db")
    yield s
    s.close_connection()


def make_queue(aws: Aws, name: str) -> str:
    attrs = {"FifoQueue": "true"} if name.endswith(".fifo") else {}
    return str(aws.client("sqs").create_queue(QueueName=name, Attributes=attrs)["QueueUrl"])


def drain(aws: Aws, url: str) -> list[dict[str, Any]]:
    """Every message in the queue (received and deleted)."""
    sqs = aws.client("sqs")
    out: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            VisibilityTimeout=60,
        ).get("Messages", [])
        if not got:
            return out
        out.extend(got)
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)
            ],
        )


def count(aws: Aws, url: str) -> int:
    """Messages in the queue, without receiving them (moto's counts are exact). Receiving and
    deleting would defeat moto's FIFO dedup, which only compares with messages still queued."""
    attrs = aws.client("sqs").get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )
