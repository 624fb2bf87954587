"""Spec models for an agent's intake and work queues: what ``drain`` stops and diverts.

An agent gets work from SQS queues (through Lambda event source mappings), from EventBridge
rules and from EventBridge Scheduler schedules. ``drain`` disables the intake, waits for the
work in flight, and (``--divert``) moves what is still queued to each queue's review queue.

These models have their own strict base (unknown keys are errors) so this module does not depend
on :mod:`agentctl.spec.models`, which embeds them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

QUEUE_REF = r"^(https?://\S+|arn:aws[a-z-]*:sqs:\S+|[A-Za-z0-9_-]{1,75}(\.fifo)?)$"
RULE_NAME = r"^[\.\-_A-Za-z0-9]{1,64}$"
BUS_NAME = r"^(arn:aws[a-z-]*:events:\S+|[/\.\-_A-Za-z0-9]{1,256})$"
SCHEDULE_NAME = r"^[0-9a-zA-Z\-_.]{1,64}$"
ESM_UUID = r"^[0-9a-fA-F-]{36}$"


class IntakeModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


def queue_name(ref: str) -> str:
    """The queue name of a name, URL (``https://sqs.../123/name``) or ARN (``arn:...:name``)."""
    if ref.startswith(("http://", "https://")):
        return ref.rstrip("/").rsplit("/", 1)[-1]
    if ref.startswith("arn:"):
        return ref.rsplit(":", 1)[-1]
    return ref


def is_fifo(ref: str) -> bool:
    return queue_name(ref).endswith(".fifo")


class WorkQueue(IntakeModel):
    """An SQS queue the agent works from, and where ``drain --divert`` moves its messages."""

    name: str = Field(pattern=QUEUE_REF, description="Queue name, URL or ARN.")
    review_queue: str | None = Field(
        default=None,
        pattern=QUEUE_REF,
        description="Queue (name, URL or ARN) that receives the diverted messages for human "
        "review. Required by `drain --divert`. A FIFO work queue needs a FIFO review queue.",
    )

    @model_validator(mode="after")
    def _review_queue_fits(self) -> WorkQueue:
        if self.review_queue is None:
            return self
        if queue_name(self.review_queue) == queue_name(self.name):
            raise ValueError("review_queue must differ from the work queue")
        if is_fifo(self.name) and not is_fifo(self.review_queue):
            raise ValueError(
                f"{queue_name(self.name)} is FIFO: its review_queue must be FIFO too "
                "(a name ending in .fifo) to keep message-group order"
            )
        return self


class EventRule(IntakeModel):
    """An EventBridge rule that feeds the agent."""

    name: str = Field(pattern=RULE_NAME, description="Rule name.")
    bus: str = Field(default="default", pattern=BUS_NAME, description="Event bus name or ARN.")


class Schedule(IntakeModel):
    """An EventBridge Scheduler schedule that feeds the agent."""

    name: str = Field(pattern=SCHEDULE_NAME, description="Schedule name.")
    group: str = Field(default="default", pattern=SCHEDULE_NAME, description="Schedule group.")


class Intake(IntakeModel):
    """Where the agent's work comes from: what ``drain`` disables (and ``resume`` re-enables)."""

    discover_mappings: bool = Field(
        default=True,
        description="Find the Lambda event source mappings of the agent's functions and of its "
        "work queues (ListEventSourceMappings) and disable them all.",
    )
    event_source_mappings: list[str] = Field(
        default_factory=list,
        description="Event source mapping UUIDs to disable, besides the discovered ones.",
    )
    rules: list[EventRule] = Field(default_factory=list)
    schedules: list[Schedule] = Field(default_factory=list)

    @field_validator("event_source_mappings")
    @classmethod
    def _uuids(cls, value: list[str]) -> list[str]:
        import re

        bad = [v for v in value if not re.match(ESM_UUID, v)]
        if bad:
            raise ValueError(f"not an event source mapping UUID: {', '.join(bad)}")
        if len(set(value)) != len(value):
            raise ValueError("duplicate event source mapping UUIDs")
        return value

    @model_validator(mode="after")
    def _unique(self) -> Intake:
        rules = [(r.bus, r.name) for r in self.rules]
        if len(set(rules)) != len(rules):
            raise ValueError("duplicate rules")
        schedules = [(s.group, s.name) for s in self.schedules]
        if len(set(schedules)) != len(schedules):
            raise ValueError("duplicate schedules")
        return self


def check_queues(queues: list[WorkQueue]) -> list[WorkQueue]:
    """Work queue names are unique (used by AgentSpec's validator)."""
    names = [queue_name(q.name) for q in queues]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"duplicate work queues: {', '.join(dupes)}")
    return queues
