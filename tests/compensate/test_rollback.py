"""The rollback operation through the library: pointer back (journaled), compensations once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agentctl.aws import Aws
from agentctl.clock import FakeClock
from agentctl.compensate.rollback import RollbackOptions, mitigations_csv
from agentctl.engine.model import Outcome
from agentctl.errors import BadInputError, ExitCode
from agentctl.incidents.models import Event
from agentctl.incidents.sqlite import SqliteStore
from agentctl.ops import Agentctl
from tests.compensate.conftest import T0, count, drain, email, refund
from tests.compensate.test_planner import write

PARAM = "/agents/refund-agent/release"


@pytest.fixture
def releases(agentctl: Agentctl, seeded: Aws, tmp_path: Path, clock: FakeClock) -> tuple[str, str]:
    """Two releases: the good one, then the bad one the deploy pipeline put in the pointer."""
    prompt, tools = tmp_path / "prompt.txt", tmp_path / "tools.json"
    tools.write_text('{"issue_refund": {}}')
    prompt.write_text("v1")
    good = agentctl.releases().record(
        "refund-agent",
        model="anthropic.claude-3-5-sonnet-20240620-v1:0",
        prompt=prompt,
        tools=tools,
    )
    clock.advance(60)
    prompt.write_text("v2: refund generously")
    bad = agentctl.releases().record(
        "refund-agent",
        model="anthropic.claude-3-5-sonnet-20241022-v2:0",
        prompt=prompt,
        tools=tools,
    )
    agentctl.releases().mark("refund-agent", good.release.id, good=True)
    seeded.client("ssm").put_parameter(
        Name=PARAM, Value=json.dumps(bad.release.document()), Type="String"
    )
    return good.release.id, bad.release.id


@pytest.fixture
def audit(tmp_path: Path) -> Path:
    root = tmp_path / "audit"
    write(root, [refund(i, amount=10.0 * (i + 1)) for i in range(12)] + [email(50), email(51)])
    return root


def _options(audit: Path, **kw: object) -> RollbackOptions:
    base: dict[str, object] = {
        "since": T0,
        "until": T0 + timedelta(hours=1),
        "source": str(audit),
    }
    base.update(kw)
    return RollbackOptions(**base)  # type: ignore[arg-type]


def test_rollback_moves_the_pointer_back_and_compensates_once(
    agentctl: Agentctl, seeded: Aws, releases: tuple[str, str], audit: Path, store: SqliteStore
) -> None:
    good, bad = releases
    plan = agentctl.plan_rollback("refund-agent", _options(audit))
    assert plan.current_release == bad and plan.target and plan.target.id == good
    assert plan.pointer_change == f"release {bad} → {good}"
    assert plan.compensation is not None
    assert plan.compensation.headline() == "12 refunds, $780 to reverse; 2 emails to follow up"
    assert plan.to_send == 12

    result = agentctl.execute_rollback(plan, reason="prompt v2 refunds everything", workers=4)

    assert result.exit_code is ExitCode.OK, result.to_dict()
    value = seeded.client("ssm").get_parameter(Name=PARAM)["Parameter"]["Value"]
    assert json.loads(value)["release_id"] == good
    url = seeded.client("sqs").get_queue_url(QueueName="refund-compensations.fifo")["QueueUrl"]
    messages = drain(seeded, url)
    assert len(messages) == 12
    assert {json.loads(m["Body"])["op"] for m in messages} == {"reverse_refund"}
    journal = store.journal(result.incident.id)  # type: ignore[union-attr]
    pointer = [e.event for e in journal if e.kind == "release.pointer"]
    assert pointer == [Event.INTENT, Event.APPLIED, Event.VERIFIED]
    notes = [e for e in journal if e.phase == "rollback" and e.event is Event.NOTE and e.kind]
    assert [n.kind for n in notes] == ["compensation.plan", "compensation.result"]
    assert "12 applied now" in notes[1].message and "2 mitigations recorded" in notes[1].message

    again = agentctl.plan_rollback("refund-agent", _options(audit, to=good))
    assert again.pointer_change is None and again.already_done == 12 and again.to_send == 0
    second = agentctl.execute_rollback(again)
    assert second.exit_code is ExitCode.OK
    assert [r.outcome for r in second.pointer.results] == [Outcome.NOOP]  # type: ignore[union-attr]
    assert second.execution.already_done == 12 and count(seeded, url) == 0  # type: ignore[union-attr]


def test_the_rollback_is_not_undone_by_resume(
    agentctl: Agentctl, seeded: Aws, releases: tuple[str, str], audit: Path
) -> None:
    agentctl.execute(agentctl.plan_contain("refund-agent"))
    agentctl.execute_rollback(agentctl.plan_rollback("refund-agent", _options(audit)))
    plan = agentctl.plan_resume("refund-agent")
    assert "release.pointer" not in {p.step.kind for p in plan.steps}
    assert plan.steps  # containment is still undone


def test_where_and_no_compensate(
    agentctl: Agentctl, seeded: Aws, releases: tuple[str, str], audit: Path
) -> None:
    plan = agentctl.plan_rollback("refund-agent", _options(audit, where="args.amount >= 100"))
    assert plan.compensation is not None and len(plan.compensation.compensations) == 3
    only_pointer = agentctl.plan_rollback("refund-agent", _options(audit, compensate=False))
    assert only_pointer.compensation is None and only_pointer.pointer_change


def test_resume_repeats_the_journaled_window(
    agentctl: Agentctl, seeded: Aws, releases: tuple[str, str], audit: Path
) -> None:
    sqs = seeded.client("sqs")
    url = sqs.get_queue_url(QueueName="refund-compensations.fifo")["QueueUrl"]
    # The queue policy is broken: every send is refused (moto: a deleted queue).
    sqs.delete_queue(QueueUrl=url)
    first = agentctl.execute_rollback(agentctl.plan_rollback("refund-agent", _options(audit)))
    assert first.exit_code is ExitCode.PARTIAL  # the pointer moved; compensations failed
    assert len(first.execution.failed) == 12  # type: ignore[union-attr]
    sqs.create_queue(QueueName="refund-compensations.fifo", Attributes={"FifoQueue": "true"})
    plan = agentctl.plan_rollback("refund-agent", RollbackOptions(resume=True, source=str(audit)))
    assert plan.compensation is not None and plan.compensation.since == T0
    done = agentctl.execute_rollback(plan)
    assert done.exit_code is ExitCode.OK and done.execution.completed == 12  # type: ignore[union-attr]


def test_window_from_the_incident(
    seeded: Aws, runbooks: Path, store: SqliteStore, tmp_path: Path
) -> None:
    # SSM history times are moto's wall clock: run this one on a clock that starts now.
    clock = FakeClock(datetime.now(UTC))
    ac = Agentctl(seeded, runbooks_dir=runbooks, store=store, clock=clock, user="oncall")
    ac.engine.verify_interval = 0.01
    prompt, tools = tmp_path / "p", tmp_path / "t.json"
    prompt.write_text("v1")
    tools.write_text("{}")
    good = ac.releases().record("refund-agent", model="m-20240101", prompt=prompt, tools=tools)
    ac.releases().mark("refund-agent", good.release.id, good=True)
    prompt.write_text("v2")
    bad = ac.releases().record("refund-agent", model="m-20240101", prompt=prompt, tools=tools)
    seeded.client("ssm").put_parameter(
        Name=PARAM, Value=json.dumps(bad.release.document()), Type="String"
    )
    live = datetime.now(UTC)
    audit = tmp_path / "audit"
    old = refund(1, ts=live - timedelta(hours=2))  # before the bad release went live
    write(audit, [old, refund(2, ts=live + timedelta(seconds=5))])
    clock.advance(60)
    ac.execute(ac.plan_contain("refund-agent"), reason="bad refunds")
    incident = store.find_open("refund-agent")
    assert incident is not None
    write(audit, [refund(3, ts=clock.now() + timedelta(minutes=5))])  # after containment
    plan = ac.plan_rollback(
        "refund-agent", RollbackOptions(incident_id=incident.id, source=str(audit))
    )
    assert plan.compensation is not None
    assert [r.action_id for r in plan.compensation.compensations] == ["act-00002"]
    assert "went live" in plan.window_note and "containment took effect" in plan.window_note


def test_no_window_and_no_release_history_is_bad_input(
    agentctl: Agentctl, seeded: Aws, releases: tuple[str, str], audit: Path
) -> None:
    with pytest.raises(BadInputError, match="no incident window"):
        agentctl.plan_rollback("refund-agent", RollbackOptions(to=None, source=str(audit)))


def test_mitigations_export_as_csv_with_formula_cells_defused(
    agentctl: Agentctl, seeded: Aws, releases: tuple[str, str], tmp_path: Path
) -> None:
    audit = tmp_path / "audit"
    write(audit, [email(1, args={"to": '=HYPERLINK("http://x")', "subject": "s"})])
    plan = agentctl.plan_rollback("refund-agent", _options(audit))
    assert plan.compensation is not None
    text = mitigations_csv(plan.compensation.mitigations)
    lines = text.splitlines()
    assert lines[0].startswith("agent,tool,mitigation,description,details,action_id")
    assert "follow_up" in lines[1] and "Send the customer a correction" in lines[1]
    assert ",=" not in lines[1]  # the agent's text cannot become a formula


def test_a_failed_pointer_move_does_not_stop_the_compensations(
    seeded: Aws, runbooks: Path, store: SqliteStore, clock: FakeClock, audit: Path, tmp_path: Path
) -> None:
    spec_file = runbooks / "refund-agent.yaml"
    text = spec_file.read_text().replace(
        "release:                             # the agent reads its pinned release here at start\n"
        "  parameter: /agents/refund-agent/release\n",
        "release:\n  function: refund-agent-worker\n  alias: live\n",  # the alias does not exist
    )
    spec_file.write_text(text)
    ac = Agentctl(seeded, runbooks_dir=runbooks, store=store, clock=clock, user="oncall")
    ac.engine.verify_interval = 0.01
    prompt, tools = tmp_path / "p", tmp_path / "t.json"
    prompt.write_text("v1")
    tools.write_text("{}")
    good = ac.releases().record(
        "refund-agent", model="m-20240101", prompt=prompt, tools=tools, function_version="1"
    )
    plan = ac.plan_rollback("refund-agent", _options(audit, to=good.release.id))
    result = ac.execute_rollback(plan)
    assert result.exit_code is ExitCode.PARTIAL
    assert result.pointer is not None and result.pointer.results[0].outcome is Outcome.FAILED
    assert "does not exist" in (result.pointer.results[0].error or "")
    assert result.execution is not None and result.execution.completed == 12
    journal = store.journal(result.incident.id)  # type: ignore[union-attr]
    assert [e.event for e in journal if e.kind == "release.pointer"] == [Event.INTENT, Event.FAILED]
