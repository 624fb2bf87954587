from __future__ import annotations

import json

import pytest

from agentctl.aws import Aws
from agentctl.errors import AwsCallError, BadInputError
from tests.levers.conftest import MakeStep, roundtrip


def inline_policies(aws: Aws) -> dict[str, dict]:
    iam = aws.client("iam")
    names = iam.list_role_policies(RoleName="refund-agent-role")["PolicyNames"]
    return {
        n: iam.get_role_policy(RoleName="refund-agent-role", PolicyName=n)["PolicyDocument"]
        for n in names
    }


def test_deny_all_tools_round_trip_keeps_other_policies(make: MakeStep, seeded: Aws) -> None:
    existing = inline_policies(seeded)
    assert list(existing) == ["agent-tools"]
    step = make("iam.deny_tools")
    _, applied = roundtrip(step)
    statements = applied.policy["Statement"]
    denied = {a for s in statements for a in s["Action"]}
    assert denied == {
        "dynamodb:GetItem",
        "dynamodb:Query",
        "lambda:InvokeFunction",
        "ses:SendEmail",
        "ses:SendRawEmail",
    }
    assert all(s["Effect"] == "Deny" for s in statements)
    assert inline_policies(seeded) == existing  # the agent's own policy untouched, ours gone


def test_deny_only_selected_tools(make: MakeStep, seeded: Aws) -> None:
    step = make("iam.deny_tools", {"tools": ["issue_refund"]})
    step.apply(step.snapshot())
    doc = inline_policies(seeded)["agentctl-containment"]
    assert [s["Sid"] for s in doc["Statement"]] == ["AgentctlDenyIssueRefund"]
    assert doc["Statement"][0]["Resource"] == ["arn:aws:lambda:*:*:function:payments-refund"]


def test_second_selection_adds_up_and_undo_restores_first_before(make: MakeStep, seeded: Aws):
    first = make("iam.deny_tools", {"tools": ["issue_refund"]})
    original = first.snapshot()
    first.apply(original)
    second = make("iam.deny_tools", {"tools": ["send_email"]})
    second.apply(second.snapshot())
    sids = [s["Sid"] for s in inline_policies(seeded)["agentctl-containment"]["Statement"]]
    assert sids == ["AgentctlDenyIssueRefund", "AgentctlDenySendEmail"]
    first.undo(original)
    assert "agentctl-containment" not in inline_policies(seeded)


def test_revoke_sessions_adds_token_issue_time_condition(make: MakeStep, seeded: Aws) -> None:
    step = make("iam.deny_tools", {"revoke_sessions": True})
    step.apply(step.snapshot())
    doc = inline_policies(seeded)["agentctl-containment"]
    revoke = [s for s in doc["Statement"] if s["Sid"] == "AgentctlRevokeOlderSessions"]
    assert revoke[0]["Condition"] == {
        "DateLessThan": {"aws:TokenIssueTime": "2026-11-24T03:00:00Z"}  # the FakeClock's now
    }
    assert revoke[0]["Action"] == "*"


def test_pre_existing_policy_of_same_name_is_restored_exactly(make: MakeStep, seeded: Aws):
    mine = {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "Old", "Effect": "Deny", "Action": "s3:*", "Resource": "*"}],
    }
    seeded.client("iam").put_role_policy(
        RoleName="refund-agent-role",
        PolicyName="agentctl-containment",
        PolicyDocument=json.dumps(mine),
    )
    step = make("iam.deny_tools")
    before, applied = roundtrip(step)
    assert before.policy == mine
    assert applied.policy["Statement"][0]["Sid"] == "Old"  # kept while contained


def test_unknown_tool_is_bad_input(make: MakeStep) -> None:
    step = make("iam.deny_tools", {"tools": ["refund_everything"]})
    with pytest.raises(BadInputError, match="unknown tool"):
        step.describe_change(step.snapshot())


def test_missing_role_says_so(make: MakeStep) -> None:
    step = make("iam.deny_tools", {"role": "no-such-role"})
    before = step.snapshot()  # no policy on a missing role: the write says which it is
    with pytest.raises(AwsCallError, match="IAM role 'no-such-role' does not exist"):
        step.apply(before)
