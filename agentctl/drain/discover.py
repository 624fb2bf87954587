"""Find what feeds an agent: its work queues resolved, and the Lambda event source mappings
of its functions and of its queues (plus the ones the spec lists by UUID)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentctl.aws import Aws
from agentctl.drain.queues import QueueRef, call, resolve
from agentctl.errors import AgentctlError, AwsCallError
from agentctl.spec.models import AgentSpec


@dataclass(frozen=True)
class MappingRef:
    uuid: str
    function: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class QueuePair:
    """A work queue and its review queue, each resolved or with the reason it could not be."""

    spec_name: str
    work: QueueRef | None
    review: QueueRef | None
    work_error: AgentctlError | None = None
    review_error: AgentctlError | None = None


@dataclass
class Intake:
    """What was found. ``errors`` name what could not be read; the rest is still usable."""

    queues: list[QueuePair] = field(default_factory=list)
    mappings: list[MappingRef] = field(default_factory=list)
    errors: list[AgentctlError] = field(default_factory=list)


def resolve_queues(aws: Aws, spec: AgentSpec) -> list[QueuePair]:
    pairs = []
    for queue in spec.queues:
        work = review = None
        work_error = review_error = None
        try:
            work = resolve(aws, queue.name)
        except AgentctlError as exc:
            work_error = exc
        if queue.review_queue is not None:
            try:
                review = resolve(aws, queue.review_queue)
            except AgentctlError as exc:
                review_error = exc
        pairs.append(QueuePair(queue.name, work, review, work_error, review_error))
    return pairs


def discover(aws: Aws, spec: AgentSpec) -> Intake:
    """Resolve the queues and list the event source mappings that feed the agent."""
    found = Intake(queues=resolve_queues(aws, spec))
    by_uuid: dict[str, MappingRef] = {}
    if spec.intake.discover_mappings:
        listings: list[tuple[str, dict[str, Any]]] = [
            (f"function {f}", {"FunctionName": f}) for f in spec.functions
        ]
        listings += [
            (f"queue {p.work.name}", {"EventSourceArn": p.work.arn}) for p in found.queues if p.work
        ]
        for what, params in listings:
            try:
                for mapping in _list(aws, params):
                    by_uuid.setdefault(mapping.uuid, mapping)
            except AwsCallError as exc:
                found.errors.append(
                    AwsCallError(
                        f"cannot list the event source mappings of {what}: {exc.message}",
                        hint=exc.hint,
                        code=exc.code,
                        operation=exc.operation,
                    )
                )
    for uuid in spec.intake.event_source_mappings:
        by_uuid.setdefault(uuid, MappingRef(uuid=uuid))
    found.mappings = list(by_uuid.values())
    return found


def _list(aws: Aws, params: dict[str, Any]) -> list[MappingRef]:
    out = []
    marker: str | None = None
    while True:
        page = call(
            aws,
            "lambda",
            "ListEventSourceMappings",
            **params,
            **({"Marker": marker} if marker else {}),
        )
        for m in page.get("EventSourceMappings", []):
            function = str(m.get("FunctionArn", "")).split(":function:", 1)[-1] or None
            out.append(MappingRef(m["UUID"], function, m.get("EventSourceArn")))
        marker = page.get("NextMarker")
        if not marker:
            return out
