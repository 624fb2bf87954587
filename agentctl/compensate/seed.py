"""Sandbox seeding for what rollback declares: compensation queues and event buses."""

from __future__ import annotations

from agentctl.aws import Aws
from agentctl.spec.models import AgentSpec


def seed_rollback(aws: Aws, spec: AgentSpec) -> list[str]:
    """Create each tool's SQS compensation queue and non-default event bus if missing."""
    created: list[str] = []
    for tool in spec.tools:
        comp = tool.compensation
        if comp is None:
            continue
        if comp.sqs is not None and "://" not in comp.sqs.queue:
            sqs = aws.client("sqs")
            name = comp.sqs.queue
            try:
                sqs.get_queue_url(QueueName=name)
            except sqs.exceptions.QueueDoesNotExist:
                attrs = {"FifoQueue": "true"} if name.endswith(".fifo") else {}
                sqs.create_queue(QueueName=name, Attributes=attrs)
                created.append(f"sqs queue {name}")
        if (
            comp.events is not None
            and comp.events.bus not in ("default",)
            and not (comp.events.bus.startswith("arn:"))
        ):
            events = aws.client("events")
            try:
                events.describe_event_bus(Name=comp.events.bus)
            except events.exceptions.ResourceNotFoundException:
                events.create_event_bus(Name=comp.events.bus)
                created.append(f"event bus {comp.events.bus}")
    return created
