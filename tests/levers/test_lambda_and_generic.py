from __future__ import annotations

from pathlib import Path

import pytest

from agentctl.aws import Aws
from agentctl.clock import FakeClock
from agentctl.errors import AwsCallError, GateFailedError
from agentctl.spec import load_agent
from tests.aws_state import reserved
from tests.levers.conftest import MakeStep, roundtrip


def test_concurrency_round_trip_from_unreserved(make: MakeStep, seeded: Aws) -> None:
    before, applied = roundtrip(
        make("lambda.reserved_concurrency", {"function": "refund-agent-worker"})
    )
    assert before.reserved is None and applied.reserved == 0
    assert reserved(seeded, "refund-agent-worker") is None


def test_concurrency_round_trip_restores_previous_value(make: MakeStep, seeded: Aws) -> None:
    seeded.client("lambda").put_function_concurrency(
        FunctionName="refund-agent-worker", ReservedConcurrentExecutions=7
    )
    roundtrip(make("lambda.reserved_concurrency", {"function": "refund-agent-worker"}))
    assert reserved(seeded, "refund-agent-worker") == 7


def test_concurrency_missing_function(make: MakeStep) -> None:
    step = make("lambda.reserved_concurrency", {"function": "ghost"})
    with pytest.raises(AwsCallError, match="'ghost' does not exist"):
        step.snapshot()


def rule_state(aws: Aws) -> str:
    return aws.client("events").describe_rule(Name="ticket-triager-nightly")["State"]


@pytest.fixture
def triager(runbooks: Path):
    return load_agent("ticket-triager", runbooks)


CALL = {
    "service": "events",
    "operation": "DisableRule",
    "parameters": {"Name": "ticket-triager-nightly"},
    "undo": {"operation": "EnableRule", "parameters": {"Name": "ticket-triager-nightly"}},
    "check": {
        "service": "events",
        "operation": "DescribeRule",
        "parameters": {"Name": "ticket-triager-nightly"},
        "path": "State",
        "equals": "DISABLED",
    },
}


def test_aws_call_with_check_and_undo_round_trip(make: MakeStep, seeded: Aws, triager) -> None:
    before, applied = roundtrip(make("aws.call", CALL, spec=triager))
    assert (before.value, applied.value) == ("ENABLED", "DISABLED")
    assert rule_state(seeded) == "ENABLED"


def test_wait_for_times_out_through_the_clock(make, triager, clock: FakeClock) -> None:
    step = make(
        "aws.wait_for",
        {**CALL["check"], "timeout": 120, "interval": 10},
        spec=triager,
    )
    start = clock.monotonic()
    with pytest.raises(GateFailedError, match="'ENABLED' after 120s"):
        step.apply(step.snapshot())
    assert clock.monotonic() - start == pytest.approx(120)  # waited on the fake clock only


def test_wait_for_returns_once_the_value_matches(make, seeded, triager, clock) -> None:
    seeded.client("events").disable_rule(Name="ticket-triager-nightly")
    step = make("aws.wait_for", {**CALL["check"], "timeout": 60}, spec=triager)
    step.apply(step.snapshot())
    assert clock.monotonic() == 0


def test_assert_fails_as_a_gate(make: MakeStep, triager) -> None:
    step = make("aws.assert", CALL["check"], spec=triager)
    with pytest.raises(GateFailedError, match="State is 'ENABLED', expected 'DISABLED'"):
        step.apply(step.snapshot())


def test_one_of_expectation(make: MakeStep, triager) -> None:
    step = make(
        "aws.assert", {**CALL["check"], "equals": None, "one_of": ["ENABLED", "X"]}, spec=triager
    )
    step.apply(step.snapshot())  # no error: ENABLED is one of them
