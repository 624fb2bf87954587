"""Wait for an agent's in-flight work to finish, through the engine's clock.

In flight means: messages a consumer received and has not deleted yet (SQS
``ApproximateNumberOfMessagesNotVisible``) and, for the agent's Lambda functions, concurrent
executions (CloudWatch ``AWS/Lambda ConcurrentExecutions``, the newest one-minute maximum; no
datapoint in the last two minutes counts as idle). Both are approximate and lag by up to a
minute: the wait says what it read, it does not pretend to know more.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from agentctl.aws import Aws
from agentctl.clock import Clock, PollTimeout, poll_until
from agentctl.drain.queues import QueueCounts, QueueRef, call, counts
from agentctl.errors import AgentctlError


@dataclass
class InFlight:
    """One reading: counts per queue, concurrent executions per function, and read errors."""

    queues: dict[str, QueueCounts] = field(default_factory=dict)
    functions: dict[str, int | None] = field(default_factory=dict)  # None: no datapoint
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def busy(self) -> int:
        return sum(c.in_flight for c in self.queues.values()) + sum(
            v or 0 for v in self.functions.values()
        )

    @property
    def done(self) -> bool:
        return self.busy == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "queues": {k: v.to_dict() for k, v in self.queues.items()},
            "functions": dict(self.functions),
            "errors": dict(self.errors),
        }


@dataclass
class WaitResult:
    done: bool  # in-flight work finished (as far as the readable counts say)
    waited_s: float
    timeout_s: float
    last: InFlight

    def to_dict(self) -> dict[str, Any]:
        return {
            "done": self.done,
            "timed_out": not self.done,
            "waited_s": round(self.waited_s, 1),
            "timeout_s": self.timeout_s,
            "last": self.last.to_dict(),
        }


def read_in_flight(
    aws: Aws, clock: Clock, queues: list[QueueRef], functions: list[str]
) -> InFlight:
    reading = InFlight()
    for queue in queues:
        try:
            reading.queues[queue.name] = counts(aws, queue)
        except AgentctlError as exc:
            reading.errors[queue.name] = exc.message
    for function in functions:
        name = function_name(function)
        try:
            reading.functions[name] = concurrent_executions(aws, clock, name)
        except AgentctlError as exc:
            reading.errors[name] = exc.message
    return reading


def concurrent_executions(aws: Aws, clock: Clock, function: str) -> int | None:
    """The newest one-minute maximum of ``ConcurrentExecutions`` (None: no recent datapoint)."""
    now = clock.now()
    response = call(
        aws,
        "cloudwatch",
        "GetMetricStatistics",
        Namespace="AWS/Lambda",
        MetricName="ConcurrentExecutions",
        Dimensions=[{"Name": "FunctionName", "Value": function}],
        StartTime=now - timedelta(minutes=2),
        EndTime=now + timedelta(minutes=1),
        Period=60,
        Statistics=["Maximum"],
    )
    points = sorted(response.get("Datapoints", []), key=lambda p: p["Timestamp"])
    return int(points[-1]["Maximum"]) if points else None


def function_name(ref: str) -> str:
    """``name`` from a function name or ARN (``arn:aws:lambda:r:a:function:name[:qualifier]``)."""
    if ref.startswith("arn:"):
        return ref.split(":")[6]
    return ref


def wait_in_flight(
    aws: Aws,
    clock: Clock,
    queues: list[QueueRef],
    functions: list[str],
    *,
    timeout: float,
    interval: float = 2.0,
    on_poll: Callable[[InFlight], None] | None = None,
) -> WaitResult:
    """Poll until nothing is in flight or ``timeout`` seconds pass; say which.

    Unreadable queues or functions are reported in ``last.errors`` and do not block the wait.
    """
    started = clock.monotonic()
    try:
        last = poll_until(
            clock,
            lambda: read_in_flight(aws, clock, queues, functions),
            lambda r: r.done,
            timeout=timeout,
            interval=interval,
            on_poll=on_poll,
        )
        done = True
    except PollTimeout as exc:
        assert isinstance(exc.last, InFlight)
        last, done = exc.last, False
    return WaitResult(done=done, waited_s=clock.monotonic() - started, timeout_s=timeout, last=last)
