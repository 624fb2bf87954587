"""Intake levers against moto: apply, verify, undo to the exact before-state, idempotence."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.stub import Stubber

from agentctl.aws import Aws
from agentctl.clock import FakeClock
from agentctl.engine.runner import make_step
from agentctl.errors import AgentctlError, AwsCallError
from agentctl.levers.base import Step, StepContext
from agentctl.spec import load_agent
from agentctl.spec.models import StepSpec


@pytest.fixture
def make(seeded: Aws, runbooks: Any, clock: FakeClock) -> Any:
    spec = load_agent("refund-agent", runbooks)

    def build(action: str, inputs: dict[str, Any]) -> Step[Any, Any]:
        ctx = StepContext(aws=seeded, spec=spec, clock=clock, started_at=clock.now())
        return make_step(ctx, StepSpec(name="s", action=action, inputs=inputs))

    return build


def esm_uuid(aws: Aws) -> str:
    mappings = aws.client("lambda").list_event_source_mappings(FunctionName="refund-agent-worker")
    (mapping,) = mappings["EventSourceMappings"]
    return str(mapping["UUID"])


def roundtrip(step: Step[Any, Any]) -> None:
    before = step.snapshot()
    assert not step.is_applied(before)
    step.apply(before)
    step.apply(step.snapshot())  # a second apply changes nothing and does not fail
    assert step.is_applied(step.snapshot())
    step.undo(before)
    step.undo(before)
    after = step.snapshot()
    assert after == before
    assert step.is_restored(after, before)


def test_event_source_mapping_disable_and_restore(make: Any, seeded: Aws) -> None:
    uuid = esm_uuid(seeded)
    step = make("lambda.disable_event_source", {"uuid": uuid})
    assert step.snapshot().state == "Enabled"
    roundtrip(step)
    lam = seeded.client("lambda")
    assert lam.get_event_source_mapping(UUID=uuid)["State"] == "Enabled"


def test_mapping_disabled_before_stays_disabled_on_undo(make: Any, seeded: Aws) -> None:
    uuid = esm_uuid(seeded)
    lam = seeded.client("lambda")
    lam.update_event_source_mapping(UUID=uuid, Enabled=False)
    step = make("lambda.disable_event_source", {"uuid": uuid})
    before = step.snapshot()
    assert step.is_applied(before)
    step.undo(before)
    assert lam.get_event_source_mapping(UUID=uuid)["State"] == "Disabled"


def test_unknown_mapping_is_a_clear_error(make: Any) -> None:
    step = make("lambda.disable_event_source", {"uuid": "00000000-0000-0000-0000-000000000000"})
    with pytest.raises(AwsCallError, match=r"event source mapping 0000.* does not exist"):
        step.snapshot()


def test_mapping_stuck_in_disabling_fails_clearly_without_hanging(
    make: Any, seeded: Aws, clock: FakeClock
) -> None:
    # moto flips an event source mapping to Disabled at once; it cannot show a mapping stuck in
    # `Disabling`, so the Lambda calls of this one test are answered by botocore's Stubber.
    uuid = esm_uuid(seeded)
    step = make("lambda.disable_event_source", {"uuid": uuid, "timeout": 30, "interval": 5})
    client = seeded.client("lambda", retries=step.retries)
    with Stubber(client) as stub:
        stub.add_response("get_event_source_mapping", {"UUID": uuid, "State": "Enabled"})
        stub.add_response("update_event_source_mapping", {"UUID": uuid, "State": "Disabling"})
        for _ in range(8):
            stub.add_response("get_event_source_mapping", {"UUID": uuid, "State": "Disabling"})
        before = step.snapshot()
        started = clock.monotonic()
        with pytest.raises(AgentctlError, match=r"still Disabling after 30s \(wanted Disabled\)"):
            step.apply(before)
    assert clock.monotonic() - started == pytest.approx(30, abs=5)  # the fake clock, not real


def test_mapping_already_disabling_is_waited_for_not_updated(make: Any, seeded: Aws) -> None:
    # moto never reports `Disabling` (see above): Stubber for these Lambda calls only. No
    # UpdateEventSourceMapping is stubbed, so the test fails if the lever sends one.
    uuid = esm_uuid(seeded)
    step = make("lambda.disable_event_source", {"uuid": uuid, "timeout": 30, "interval": 5})
    client = seeded.client("lambda", retries=step.retries)
    with Stubber(client) as stub:
        stub.add_response("get_event_source_mapping", {"UUID": uuid, "State": "Disabling"})
        stub.add_response("get_event_source_mapping", {"UUID": uuid, "State": "Disabling"})
        stub.add_response("get_event_source_mapping", {"UUID": uuid, "State": "Disabled"})
        before = step.snapshot()
        assert "finish Disabling" in step.describe_change(before)
        step.apply(before)
        stub.assert_no_pending_responses()


def test_rule_disable_and_restore(make: Any, seeded: Aws) -> None:
    step = make("events.disable_rule", {"name": "refund-agent-escalations"})
    roundtrip(step)
    assert seeded.client("events").describe_rule(Name="refund-agent-escalations")["State"] == (
        "ENABLED"
    )


def test_rule_disabled_before_stays_disabled(make: Any, seeded: Aws) -> None:
    events = seeded.client("events")
    events.disable_rule(Name="refund-agent-escalations")
    step = make("events.disable_rule", {"name": "refund-agent-escalations"})
    before = step.snapshot()
    assert step.is_applied(before)
    step.undo(before)
    assert events.describe_rule(Name="refund-agent-escalations")["State"] == "DISABLED"


def test_rule_on_a_missing_bus_or_name_is_a_clear_error(make: Any) -> None:
    step = make("events.disable_rule", {"name": "nope"})
    with pytest.raises(AwsCallError, match="rule nope does not exist on bus default"):
        step.snapshot()


def test_schedule_write_back_changes_only_state(make: Any, seeded: Aws) -> None:
    scheduler = seeded.client("scheduler")
    original = scheduler.get_schedule(Name="refund-agent-hourly-sweep")
    step = make("scheduler.disable_schedule", {"name": "refund-agent-hourly-sweep"})
    before = step.snapshot()
    step.apply(before)
    disabled = scheduler.get_schedule(Name="refund-agent-hourly-sweep")
    assert disabled["State"] == "DISABLED"
    keep = ("ScheduleExpression", "Description", "Target", "FlexibleTimeWindow", "GroupName")
    for key in keep:
        assert disabled[key] == original[key], key
    step.undo(before)
    restored = scheduler.get_schedule(Name="refund-agent-hourly-sweep")
    assert restored["State"] == "ENABLED"
    for key in keep:
        assert restored[key] == original[key], key


def test_schedule_disabled_before_stays_disabled(make: Any, seeded: Aws) -> None:
    step = make("scheduler.disable_schedule", {"name": "refund-agent-hourly-sweep"})
    step.apply(step.snapshot())
    before = step.snapshot()  # disabled "before the incident"
    assert step.is_applied(before)
    step.undo(before)
    assert step.snapshot().state == "DISABLED"


def test_missing_schedule_is_a_clear_error(make: Any) -> None:
    step = make("scheduler.disable_schedule", {"name": "nope", "group": "default"})
    with pytest.raises(AwsCallError, match="schedule default/nope does not exist"):
        step.snapshot()


def test_access_denied_names_the_permission(make: Any, seeded: Aws, inject: Any) -> None:
    step = make("events.disable_rule", {"name": "refund-agent-escalations"})
    inject(seeded, "events", "DisableRule", retries=step.retries)
    with pytest.raises(AwsCallError, match="missing permission events:DisableRule"):
        step.apply(step.snapshot())
