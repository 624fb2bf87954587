"""The engine end to end on moto: plan, dry run, apply, verify, journal, partial failure,
re-runs, crash recovery and resume to the exact before-state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber

from agentctl.aws import Aws
from agentctl.engine.model import Outcome
from agentctl.engine.phases import ContainOptions
from agentctl.errors import ExitCode
from agentctl.incidents.models import Event
from agentctl.levers.ssm import DisableTools
from agentctl.ops import Agentctl
from tests.aws_state import put_registry, registry, reserved

AGENT = "refund-agent"


def deny_policy(aws: Aws) -> dict[str, Any] | None:
    iam = aws.client("iam")
    if (
        "agentctl-containment"
        not in iam.list_role_policies(RoleName="refund-agent-role")["PolicyNames"]
    ):
        return None
    return iam.get_role_policy(RoleName="refund-agent-role", PolicyName="agentctl-containment")[
        "PolicyDocument"
    ]


def outcomes(result) -> dict[str, Outcome]:
    return {r.name: r.outcome for r in result.results}


def test_dry_run_touches_nothing(agentctl: Agentctl, seeded: Aws) -> None:
    before_registry = registry(seeded)
    plan = agentctl.plan_contain(AGENT, ContainOptions(hard=True))
    result = agentctl.dry_run(plan)
    assert set(outcomes(result).values()) == {Outcome.PLANNED}
    assert len(plan.changes) == 4
    assert registry(seeded) == before_registry
    assert deny_policy(seeded) is None
    assert reserved(seeded, "refund-agent-worker") is None
    assert agentctl.incidents() == []  # no incident opened by a dry run


def test_contain_applies_verifies_and_journals(agentctl: Agentctl, seeded: Aws) -> None:
    plan = agentctl.plan_contain(AGENT)
    result = agentctl.execute(plan, reason="refunding twice")
    assert result.exit_code is ExitCode.OK
    assert outcomes(result) == {"deny-tools": Outcome.APPLIED, "disable-registry": Outcome.APPLIED}
    assert all(t["enabled"] is False for t in registry(seeded)["tools"].values())
    assert deny_policy(seeded) is not None
    assert result.incident is not None and result.incident.id == "INC-20261124-0001"

    journal = agentctl.store.journal(result.incident.id)
    assert journal[0].event is Event.NOTE and "opened incident" in journal[0].message
    for step in ("deny-tools", "disable-registry"):
        events = [e for e in journal if e.step == step]
        assert [e.event for e in events] == [Event.INTENT, Event.APPLIED, Event.VERIFIED]
        intent, applied, verified = events
        assert intent.seq < applied.seq < verified.seq
        assert intent.before is not None and verified.after is not None
        assert applied.request_ids, "the AWS request id of the change is journaled"
        assert intent.operator.user == "oncall"
        assert intent.operator.arn.startswith("arn:aws:sts::")
        assert intent.reason == "refunding twice"
    registry_intent = next(e for e in journal if e.step == "disable-registry")
    assert registry_intent.before["enabled"] == {
        "lookup_order": True,
        "issue_refund": True,
        "send_email": True,
    }


def test_second_contain_changes_nothing_and_says_so(agentctl: Agentctl) -> None:
    first = agentctl.execute(agentctl.plan_contain(AGENT))
    plan = agentctl.plan_contain(AGENT)
    assert plan.changes == []
    second = agentctl.execute(plan)
    assert set(outcomes(second).values()) == {Outcome.NOOP}
    assert second.incident is not None and first.incident is not None
    assert second.incident.id == first.incident.id and not second.incident_opened
    noops = [e for e in agentctl.store.journal(first.incident.id) if e.event is Event.NOOP]
    assert len(noops) == 2


def test_partial_failure_access_denied_then_rerun_finishes(agentctl: Agentctl, seeded: Aws):
    iam = seeded.client("iam", retries=4)  # the client the IAM lever uses (default retries: 4)
    # moto cannot refuse one specific call, so this one call is stubbed (house rule).
    with Stubber(iam) as stub:
        stub.add_client_error("get_role_policy", "NoSuchEntity", http_status_code=404)
        stub.add_client_error(
            "put_role_policy",
            "AccessDenied",
            "User: arn:aws:sts::123456789012:assumed-role/oncall/x is not authorized to perform: "
            "iam:PutRolePolicy on resource: role refund-agent-role",
            http_status_code=403,
        )
        result = agentctl.execute(agentctl.plan_contain(AGENT), reason="r")
    assert result.exit_code is ExitCode.PARTIAL
    by_name = {r.name: r for r in result.results}
    assert by_name["disable-registry"].outcome is Outcome.APPLIED
    failed = by_name["deny-tools"]
    assert failed.outcome is Outcome.FAILED
    assert failed.error == "AccessDenied: missing permission iam:PutRolePolicy"
    assert failed.hint is not None and "grant iam:PutRolePolicy" in failed.hint
    assert deny_policy(seeded) is None
    assert result.incident is not None
    journal = agentctl.store.journal(result.incident.id)
    failures = [e for e in journal if e.event is Event.FAILED]
    assert [(e.step, e.error) for e in failures] == [
        ("deny-tools", "AccessDenied: missing permission iam:PutRolePolicy")
    ]

    rerun = agentctl.execute(agentctl.plan_contain(AGENT))
    assert rerun.exit_code is ExitCode.OK
    assert outcomes(rerun) == {"deny-tools": Outcome.APPLIED, "disable-registry": Outcome.NOOP}
    assert deny_policy(seeded) is not None


def _custom_contain(runbooks: Path, steps_yaml: str) -> None:
    path = runbooks / "refund-agent.yaml"
    path.write_text(path.read_text() + "runbooks:\n  contain:\n    steps:\n" + steps_yaml)


def test_throttling_after_retries_is_a_named_failure(agentctl: Agentctl, seeded, runbooks):
    _custom_contain(
        runbooks,
        "      - {name: deny-tools, action: iam.deny_tools}\n"
        "      - {name: disable-registry, action: registry.disable_tools, retries: 0}\n",
    )
    ssm = seeded.client("ssm", retries=0)
    # moto does not throttle: one stubbed Throttling answer for the one attempt allowed.
    with Stubber(ssm) as stub:
        stub.add_client_error("get_parameter", "ThrottlingException", "Rate exceeded", 400)
        result = agentctl.execute(agentctl.plan_contain(AGENT))
    by_name = {r.name: r for r in result.results}
    assert by_name["disable-registry"].outcome is Outcome.FAILED
    assert "throttled by AWS after retries" in (by_name["disable-registry"].error or "")
    assert by_name["deny-tools"].outcome is Outcome.APPLIED
    assert result.exit_code is ExitCode.PARTIAL


def test_abort_skips_dependants_and_a_failed_check_is_a_gate(agentctl: Agentctl, runbooks):
    _custom_contain(
        runbooks,
        "      - name: check\n"
        "        action: aws.assert\n"
        "        on_failure: abort\n"
        "        inputs: {service: ssm, operation: GetParameter,\n"
        "                 parameters: {Name: /agents/refund-agent/mode},\n"
        "                 path: Parameter.Value, equals: shadow}\n"
        "      - {name: deny-tools, action: iam.deny_tools, depends_on: [check]}\n",
    )
    result = agentctl.execute(agentctl.plan_contain(AGENT))
    by_name = {r.name: r for r in result.results}
    assert by_name["check"].outcome is Outcome.FAILED
    assert "expected 'shadow'" in (by_name["check"].error or "")
    assert by_name["deny-tools"].outcome is Outcome.SKIPPED
    assert result.exit_code is ExitCode.GATE_FAILED


def test_resume_restores_exact_pre_incident_state(agentctl: Agentctl, seeded: Aws) -> None:
    # before the incident: one tool already off, one function already limited to 5
    doc = registry(seeded)
    doc["tools"]["send_email"]["enabled"] = False
    put_registry(seeded, doc)
    seeded.client("lambda").put_function_concurrency(
        FunctionName="refund-agent-worker", ReservedConcurrentExecutions=5
    )
    original = registry(seeded)

    agentctl.execute(agentctl.plan_contain(AGENT, ContainOptions(tools=["issue_refund"])))
    agentctl.execute(agentctl.plan_contain(AGENT, ContainOptions(hard=True)))
    agentctl.execute(agentctl.plan_shadow(AGENT))
    assert reserved(seeded, "refund-agent-worker") == 0
    assert agentctl.status(AGENT).overall == "contained, shadow"

    plan = agentctl.plan_resume(AGENT)
    assert {p.name for p in plan.changes} == {
        "deny-tools",
        "disable-registry",
        "stop-function-1",
        "stop-function-2",
        "shadow-flag",
    }
    result = agentctl.execute(plan, reason="fixed")
    assert result.exit_code is ExitCode.OK
    assert registry(seeded) == original  # send_email stays disabled
    assert reserved(seeded, "refund-agent-worker") == 5
    assert reserved(seeded, "refund-agent-planner") is None
    assert deny_policy(seeded) is None
    assert agentctl.status(AGENT).overall == "live"
    undone = [e for e in agentctl.store.journal(result.incident.id) if e.event is Event.UNDONE]
    assert len(undone) == 5

    again = agentctl.plan_resume(AGENT)
    assert again.steps == []  # nothing left to restore


def test_shadow_off_restores_recorded_mode(agentctl: Agentctl, seeded: Aws) -> None:
    agentctl.execute(agentctl.plan_shadow(AGENT))
    assert agentctl.status(AGENT).overall == "live, shadow"
    result = agentctl.execute(agentctl.plan_shadow(AGENT, off=True))
    assert [r.outcome for r in result.results] == [Outcome.APPLIED]
    value = seeded.client("ssm").get_parameter(Name="/agents/refund-agent/mode")
    assert value["Parameter"]["Value"] == "live"


def test_crash_after_the_aws_call_then_rerun_and_resume(agentctl, seeded, monkeypatch) -> None:
    """The process dies after changing the registry but before journaling it as applied."""
    real_apply = DisableTools.apply

    def apply_then_die(self, before):  # type: ignore[no-untyped-def]
        real_apply(self, before)
        raise SystemExit("kill -9")

    monkeypatch.setattr(DisableTools, "apply", apply_then_die)
    with pytest.raises(SystemExit):
        agentctl.execute(agentctl.plan_contain(AGENT))
    monkeypatch.setattr(DisableTools, "apply", real_apply)
    incident = agentctl.store.find_open(AGENT)
    assert incident is not None
    journal = agentctl.store.journal(incident.id)
    registry_events = [e.event for e in journal if e.step == "disable-registry"]
    assert registry_events == [Event.INTENT]  # the intent survived, nothing after it

    rerun = agentctl.execute(agentctl.plan_contain(AGENT))
    assert outcomes(rerun)["disable-registry"] is Outcome.NOOP  # converged
    assert rerun.exit_code is ExitCode.OK

    agentctl.execute(agentctl.plan_resume(AGENT))
    assert all(t["enabled"] is True for t in registry(seeded)["tools"].values())
    assert deny_policy(seeded) is None


def test_resume_without_incident_is_bad_input(agentctl: Agentctl) -> None:
    from agentctl.errors import BadInputError

    with pytest.raises(BadInputError, match="no open incident"):
        agentctl.plan_resume(AGENT)


def test_unknown_tool_flag_is_bad_input(agentctl: Agentctl) -> None:
    from agentctl.errors import BadInputError

    with pytest.raises(BadInputError, match="unknown tool"):
        agentctl.plan_contain(AGENT, ContainOptions(tools=["nope"]))
