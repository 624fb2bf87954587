"""Plan selection: window, --where, what counts as an action to compensate; read from files in
the trace layout (issue 4's reader), and the plan's counts and totals per tool."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from agentctl.aws import Aws
from agentctl.compensate.planner import plan_compensations
from agentctl.compensate.source import load_actions
from agentctl.errors import BadInputError
from agentctl.sdk.layout import partition_of
from agentctl.trace.records import to_json_dict
from agentctl.trace.scan import ScanStats
from tests.compensate.conftest import T0, email, refund, spec_with


def write(root: Path, records: list) -> None:
    for record in records:
        part = root / partition_of(record.ts)
        part.mkdir(parents=True, exist_ok=True)
        with (part / "actions-test-0001.jsonl").open("a") as fh:
            fh.write(json.dumps(to_json_dict(record)) + "\n")


@pytest.fixture
def audit(tmp_path: Path) -> Path:
    root = tmp_path / "audit"
    records = (
        [refund(i, amount=20.0 + i, minutes=-90) for i in range(3)]  # before the window
        + [refund(10 + i, amount=10.0 * (i + 1)) for i in range(6)]  # 10..60, in the window
        + [email(20 + i) for i in range(4)]
        + [refund(30, status="refused", error="kill switch"), refund(31, status="shadowed")]
        + [refund(32, status="failed", effects=[])]  # ran, raised, changed nothing listed
        + [refund(33, status="failed")]  # ran, raised, but a refund was created
        + [refund(40, minutes=60 * 25)]  # the next day, after the window
        + [refund(41, tool="lookup_order")]  # read-only
    )
    write(root, records)
    (root / partition_of(T0) / "actions-test-0001.jsonl").open("a").write("{not json\n")
    return root


def test_window_and_status_decide_what_is_compensated(audit: Path, aws: Aws) -> None:
    spec = spec_with()
    stats = ScanStats()
    actions = load_actions(
        spec,
        aws,
        since=T0,
        until=T0 + timedelta(hours=2),
        source=str(audit),
        stats=stats,
    )
    plan = plan_compensations(spec, actions, since=T0, until=T0 + timedelta(hours=2))
    ids = sorted(r.action_id for r in plan.compensations)
    assert ids == [f"act-{i:05d}" for i in (*range(10, 16), 33)]
    assert len(plan.mitigations) == 4
    assert plan.not_run == 3 and plan.read_only == 1
    assert plan.headline() == "7 refunds, $250 to reverse; 4 emails to follow up"
    assert stats.bad_total == 1  # the corrupt line is counted, not fatal


def test_where_narrows_the_plan(audit: Path, aws: Aws) -> None:
    spec = spec_with()
    actions = load_actions(
        spec,
        aws,
        since=T0,
        until=T0 + timedelta(hours=2),
        where="tool = 'issue_refund' and args.amount > 30",
        source=str(audit),
    )
    plan = plan_compensations(spec, actions)
    assert sorted(r.amount for r in plan.compensations) == [40.0, 40.0, 50.0, 60.0]
    assert plan.mitigations == []


def test_no_audit_location_is_bad_input(aws: Aws) -> None:
    with pytest.raises(BadInputError, match="no audit location"):
        load_actions(spec_with(), aws, since=T0, until=T0 + timedelta(hours=1))


def test_an_unknown_tool_is_reported_not_guessed() -> None:
    plan = plan_compensations(spec_with(), [refund(1, tool="wire_money")])
    assert plan.compensations == [] and plan.problems[0].message.startswith("tool not in the spec")
