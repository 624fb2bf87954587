"""Sandbox seeding for drain: create the queues, mappings, rules and schedules a spec declares.

Called by :func:`agentctl.sandbox.seed`. Each resource is created only if missing (safe to run
twice). Event source mappings: one per work queue, to the agent's first function.
"""

from __future__ import annotations

import json
from typing import Any

from agentctl.aws import Aws
from agentctl.spec.intake import is_fifo, queue_name
from agentctl.spec.models import AgentSpec


def seed_intake(aws: Aws, spec: AgentSpec, role_arn: str) -> list[str]:
    created: list[str] = []
    sqs = aws.client("sqs")
    arns: dict[str, str] = {}
    for queue in spec.queues:
        for ref in (queue.name, queue.review_queue):
            if ref is None:
                continue
            arn, made = _queue(sqs, queue_name(ref))
            arns[ref] = arn
            if made:
                created.append(f"sqs queue {queue_name(ref)}")
    lam = aws.client("lambda")
    if spec.functions and spec.intake.discover_mappings:
        function = spec.functions[0]
        for queue in spec.queues:
            existing = lam.list_event_source_mappings(
                FunctionName=function, EventSourceArn=arns[queue.name]
            )["EventSourceMappings"]
            if not existing:
                lam.create_event_source_mapping(
                    EventSourceArn=arns[queue.name], FunctionName=function, BatchSize=10
                )
                created.append(f"event source mapping {queue_name(queue.name)} → {function}")
    events = aws.client("events")
    for rule in spec.intake.rules:
        try:
            events.describe_rule(Name=rule.name, EventBusName=rule.bus)
        except events.exceptions.ResourceNotFoundException:
            if rule.bus != "default":
                try:
                    events.describe_event_bus(Name=rule.bus)
                except events.exceptions.ResourceNotFoundException:
                    events.create_event_bus(Name=rule.bus)
            events.put_rule(
                Name=rule.name,
                EventBusName=rule.bus,
                EventPattern=json.dumps({"source": [f"agentctl.sandbox.{spec.name}"]}),
                State="ENABLED",
            )
            created.append(f"eventbridge rule {rule.name}")
    scheduler = aws.client("scheduler")
    target = next(iter(arns.values()), f"arn:aws:lambda:{aws.region}:123456789012:function:x")
    for schedule in spec.intake.schedules:
        if schedule.group != "default":
            try:
                scheduler.get_schedule_group(Name=schedule.group)
            except scheduler.exceptions.ResourceNotFoundException:
                scheduler.create_schedule_group(Name=schedule.group)
        try:
            scheduler.get_schedule(Name=schedule.name, GroupName=schedule.group)
        except scheduler.exceptions.ResourceNotFoundException:
            scheduler.create_schedule(
                Name=schedule.name,
                GroupName=schedule.group,
                ScheduleExpression="rate(1 hour)",
                Description=f"feeds {spec.name}",
                FlexibleTimeWindow={"Mode": "OFF"},
                Target={"Arn": target, "RoleArn": role_arn, "Input": "{}"},
                State="ENABLED",
            )
            created.append(f"schedule {schedule.group}/{schedule.name}")
    return created


def _queue(sqs: Any, name: str) -> tuple[str, bool]:
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        made = False
    except sqs.exceptions.QueueDoesNotExist:
        attributes = {"FifoQueue": "true"} if is_fifo(name) else {}
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        made = True
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return str(arn), made
