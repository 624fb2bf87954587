"""The guard: kill switch through the cache, shadow mode, keys handed to the tool, records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from botocore.stub import Stubber

from agentctl.aws import Aws
from agentctl.clock import FakeClock
from agentctl.ops import Agentctl
from agentctl.sdk import Agent, KillSwitch, LocalJsonlSink, ToolRevoked, UsageError, Writer
from agentctl.trace.query import iter_actions
from agentctl.trace.scan import ScanStats
from tests.sdk.conftest import MODE, REGISTRY, Rig, window


def actions(rig: Rig) -> list:
    assert rig.agent.flush()
    stats = ScanStats()
    found = list(iter_actions(str(rig.audit), "refund-agent", *window(rig.clock), stats=stats))
    assert stats.bad_total == 0, stats.to_dict()
    return found


def test_live_call_executes_with_the_key_and_records_effects(rig: Rig) -> None:
    with rig.agent.unit_of_work("T-1", input={"ticket": "refund please"}):
        rig.agent.record_model_call(
            model_requested="claude-x",
            model_answered="claude-x-2026-10",
            prompt_template="refund-triage",
            prompt_version="v12",
        )
        assert rig.issue_refund("o-1", 25.0) == {"refund_id": "re_1"}

    [record] = actions(rig)
    assert record.status == "executed"
    assert record.args == {"order_id": "o-1", "amount": 25, "currency": "EUR"}
    assert record.idempotency_key == rig.payments.refunds[0]["key"]
    assert [(e.system, e.resource_id, e.reversible) for e in record.effects] == [
        ("payments", "re_1", True)
    ]
    assert record.effects[0].idempotency_key == record.idempotency_key
    assert record.release_id == "rel-7" and record.unit_of_work == "T-1"


def test_retry_of_the_same_call_has_the_same_key_and_is_deduped_downstream(rig: Rig) -> None:
    with rig.agent.unit_of_work("T-2"):
        rig.issue_refund("o-2", 10)
        rig.issue_refund(order_id="o-2", amount=10.0, currency="EUR")  # same call, spelled apart
    assert len(rig.payments.refunds) == 1
    keys = {r.idempotency_key for r in actions(rig)}
    assert len(keys) == 1


def test_contain_reaches_the_running_agent_within_the_cache_window(
    rig: Rig, agentctl: Agentctl
) -> None:
    with rig.agent.unit_of_work("T-3"):
        rig.issue_refund("o-3", 5)  # reads the switch: live, tool enabled
        result = agentctl.execute(agentctl.plan_contain("refund-agent"), reason="test")
        assert int(result.exit_code) == 0
        rig.clock.advance(0.5)
        rig.issue_refund("o-4", 5)  # still inside the 1 s cache: the old state
        rig.clock.advance(0.5)
        with pytest.raises(ToolRevoked, match="issue_refund"):
            rig.issue_refund("o-5", 5)

    assert [r["order"] for r in rig.payments.refunds] == ["o-3", "o-4"]
    records = actions(rig)
    assert [(r.args["order_id"], r.status) for r in records] == [
        ("o-3", "executed"),
        ("o-4", "executed"),
        ("o-5", "refused"),
    ]
    assert "revoked" in (records[-1].error or "")


def test_shadow_mode_executes_nothing_and_records_what_it_would_have_done(
    rig: Rig, agentctl: Agentctl
) -> None:
    agentctl.execute(agentctl.plan_shadow("refund-agent"), reason="test")
    with rig.agent.unit_of_work("T-4"):
        assert rig.issue_refund("o-9", 99) == {"shadow": True}
    assert rig.payments.refunds == []
    [record] = actions(rig)
    assert record.status == "shadowed"
    assert record.args["amount"] == 99 and record.effects == []


def test_a_tool_that_raises_is_recorded_as_failed_and_the_error_propagates(
    seeded: Aws, tmp_path: Path, clock: FakeClock
) -> None:
    agent = Agent(
        "refund-agent",
        writer=Writer(LocalJsonlSink(tmp_path), background=False),
        ssm=seeded.client("ssm"),
        registry_parameter=REGISTRY,
        monotonic=clock.monotonic,
        now=clock.now,
    )

    @agent.tool()
    def send_email(to: str) -> None:
        raise ConnectionError("smtp down")

    with agent.unit_of_work("T-5"), pytest.raises(ConnectionError, match="smtp down"):
        send_email("a@example.com")
    agent.flush()
    [record] = list(iter_actions(str(tmp_path), "refund-agent", *window(clock)))
    assert record.status == "failed" and "smtp down" in (record.error or "")


def test_guarded_call_outside_a_unit_of_work_is_a_usage_error(rig: Rig) -> None:
    with pytest.raises(UsageError, match="unit_of_work"):
        rig.issue_refund("o-1", 1)
    assert rig.payments.refunds == []


def test_unreadable_kill_switch_uses_the_last_good_state_then_fails_closed(
    seeded: Aws, clock: FakeClock
) -> None:
    ssm = seeded.client("ssm")
    switch = KillSwitch(
        ssm,
        registry_parameter=REGISTRY,
        shadow_parameter=MODE,
        ttl=1.0,
        max_stale=30.0,
        monotonic=clock.monotonic,
    )
    assert switch.state().ok  # one good read from moto
    # moto cannot deny SSM calls: Stubber produces the AccessDenied for these reads only.
    with Stubber(ssm) as stub:
        for _ in range(2):
            stub.add_client_error("get_parameters", "AccessDeniedException", http_status_code=400)
        clock.advance(10)
        state = switch.state()
        assert state.ok and state.tool_enabled("issue_refund")  # last good state, 10 s old
        clock.advance(30)
        state = switch.state()
        assert not state.ok and "AccessDenied" in (state.error or "")
    assert switch.stats.errors == 2


def test_malformed_registry_fails_closed(seeded: Aws, clock: FakeClock) -> None:
    ssm = seeded.client("ssm")
    ssm.put_parameter(Name=REGISTRY, Value="{not json", Type="String", Overwrite=True)
    switch = KillSwitch(ssm, registry_parameter=REGISTRY, monotonic=clock.monotonic)
    assert not switch.state().ok


def test_missing_registry_entry_means_enabled_and_false_means_revoked(
    seeded: Aws, clock: FakeClock
) -> None:
    ssm = seeded.client("ssm")
    doc = {"tools": {"issue_refund": {"enabled": False}, "send_email": {}}}
    ssm.put_parameter(Name=REGISTRY, Value=json.dumps(doc), Type="String", Overwrite=True)
    state = KillSwitch(ssm, registry_parameter=REGISTRY, monotonic=clock.monotonic).state()
    assert not state.tool_enabled("issue_refund")
    assert state.tool_enabled("send_email") and state.tool_enabled("lookup_order")
