"""Drain fixtures: the seeded refund-agent (work queue, review queue, ESM, rule, schedule), an
extra agent with a FIFO queue, helpers to put and read messages, and AWS error injection."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentctl.aws import Aws
from agentctl.clock import FakeClock
from agentctl.incidents.sqlite import SqliteStore
from agentctl.ops import Agentctl
from agentctl.sandbox import seed
from agentctl.spec import load_agent

ORDERS_AGENT = """\
version: 1
name: orders-agent
owner: orders-oncall
role: orders-agent-role
functions: [orders-agent-worker]
queues:
  - name: orders.fifo
    review_queue: orders-review.fifo
  - name: returns
    review_queue: returns-review
"""


@pytest.fixture
def orders_agent(runbooks: Path, seeded: Aws) -> Aws:
    """A second agent: a FIFO work queue and a standard one, both with review queues."""
    (runbooks / "orders-agent.yaml").write_text(ORDERS_AGENT)
    seed(seeded, load_agent("orders-agent", runbooks))
    return seeded


@pytest.fixture
def ac(agentctl: Agentctl) -> Agentctl:
    return agentctl


def stop_mappings(aws: Aws) -> None:
    """Disable every event source mapping (so that moto does not try to run the functions on
    each message put; tests of the drain levers themselves do not use this)."""
    lam = aws.client("lambda")
    for mapping in lam.list_event_source_mappings()["EventSourceMappings"]:
        lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)


def url(aws: Aws, name: str) -> str:
    return str(aws.client("sqs").get_queue_url(QueueName=name)["QueueUrl"])


def put(aws: Aws, queue: str, count: int, *, start: int = 0, **kwargs: Any) -> list[str]:
    """Put ``count`` messages (body ``msg-<i>``, attributes ``n`` and ``blob``); return ids."""
    sqs = aws.client("sqs")
    ids: list[str] = []
    fifo = queue.endswith(".fifo")
    for first in range(start, start + count, 10):
        entries = []
        for i in range(first, min(first + 10, start + count)):
            entry: dict[str, Any] = {
                "Id": str(i),
                "MessageBody": json.dumps({"ticket": i, "text": f"msg-{i}"}),
                "MessageAttributes": {
                    "n": {"DataType": "Number", "StringValue": str(i)},
                    "blob": {"DataType": "Binary", "BinaryValue": bytes([i % 256, 0, 255])},
                },
            }
            if fifo:
                entry["MessageGroupId"] = kwargs.get("group", lambda i: f"g{i % 3}")(i)
                entry["MessageDeduplicationId"] = f"d{i}"
            entries.append(entry)
        response = sqs.send_message_batch(QueueUrl=url(aws, queue), Entries=entries)
        assert not response.get("Failed"), response.get("Failed")
        ids += [ok["MessageId"] for ok in response["Successful"]]
    return ids


def take_all(aws: Aws, queue: str) -> list[dict[str, Any]]:
    """Receive (and delete) everything in ``queue``, in delivery order."""
    sqs = aws.client("sqs")
    out: list[dict[str, Any]] = []
    while True:
        response = sqs.receive_message(
            QueueUrl=url(aws, queue),
            MaxNumberOfMessages=10,
            VisibilityTimeout=60,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if not messages:
            return out
        out += messages
        sqs.delete_message_batch(
            QueueUrl=url(aws, queue),
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )


def depth(aws: Aws, queue: str) -> tuple[int, int]:
    attrs = aws.client("sqs").get_queue_attributes(
        QueueUrl=url(aws, queue),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


class _Http:
    def __init__(self, status: int) -> None:
        self.status_code = status
        self.headers: dict[str, str] = {}
        self.content = b""


@pytest.fixture
def inject() -> Iterator[Callable[..., None]]:
    """Make one AWS operation fail for matching parameters, on a real (moto-backed) client.

    moto does not enforce IAM, so it cannot produce AccessDenied for one queue; this answers
    that one call with the error AWS would send (before it reaches moto) and lets every other
    call through to moto. Unregistered when the test ends.
    """
    registered: list[tuple[Any, str, Any]] = []

    def install(
        aws: Aws,
        service: str,
        operation: str,
        *,
        when: Callable[[dict[str, Any]], bool] = lambda p: True,
        code: str = "AccessDenied",
        message: str = "",
        status: int = 403,
        times: int | None = None,
        retries: int | None = None,
    ) -> None:
        client = aws.client(service, retries=retries)
        left = [times]

        def remember(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
            context["injected_api_params"] = dict(params)

        def handler(context: dict[str, Any], **_: Any) -> Any:
            if not when(context.get("injected_api_params", {})) or left[0] == 0:
                return None
            if left[0] is not None:
                left[0] -= 1
            who = "User: arn:aws:sts::123456789012:assumed-role/oncall"
            text = message or f"{who} is not authorized to perform: {service}:{operation}"
            return _Http(status), {
                "Error": {"Code": code, "Message": text},
                "ResponseMetadata": {"RequestId": "injected", "HTTPStatusCode": status},
            }

        service_id = client.meta.service_model.service_id.hyphenize()
        for event, fn in (
            (f"before-parameter-build.{service_id}.{operation}", remember),
            (f"before-call.{service_id}.{operation}", handler),
        ):
            client.meta.events.register(event, fn)
            registered.append((client, event, fn))

    yield install
    for client, event, handler in registered:
        client.meta.events.unregister(event, handler)


@pytest.fixture
def store2(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "other.db")
    yield s
    s.close_connection()


@pytest.fixture
def fresh_clock() -> FakeClock:
    return FakeClock()
