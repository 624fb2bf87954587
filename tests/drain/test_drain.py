"""drain through the library facade: levers journaled and undone by resume, the in-flight wait
on the engine's clock, divert and redrive, and the bad paths (partial, nothing lost, re-run)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agentctl.aws import Aws
from agentctl.clock import FakeClock
from agentctl.drain.divert import ORIGIN_ATTRIBUTE, MoveOptions
from agentctl.drain.service import DrainReport
from agentctl.errors import BadInputError, ExitCode
from agentctl.incidents.models import Event
from agentctl.ops import Agentctl, LeverState
from agentctl.sandbox import seed
from agentctl.spec import load_agent
from tests.drain.conftest import ORDERS_AGENT, depth, put, stop_mappings, take_all

FAST = MoveOptions(workers=4, wait_seconds=0)


def drain(ac: Agentctl, agent: str, *, divert: bool = True, timeout: float = 0) -> DrainReport:
    plan = ac.plan_drain(agent, divert=divert)
    report = DrainReport(plan=plan, run=ac.execute(plan.plan, reason="test"))
    if timeout:
        report.wait = ac.wait_in_flight(plan, timeout=timeout, interval=5)
    if divert:
        report.moves = ac.divert(plan, report.run, options=FAST)
    return report


def mapping_state(aws: Aws, function: str = "refund-agent-worker") -> str:
    (m,) = aws.client("lambda").list_event_source_mappings(FunctionName=function)[
        "EventSourceMappings"
    ]
    return str(m["State"])


def test_drain_disables_intake_and_resume_restores_exactly_that(ac: Agentctl, seeded: Aws):
    events = seeded.client("events")
    events.put_rule(Name="refund-agent-manual", EventPattern='{"source": ["x"]}', State="DISABLED")
    spec_path = Path(str(ac.runbooks_dir)) / "refund-agent.yaml"
    spec_path.write_text(
        spec_path.read_text().replace(
            "    - name: refund-agent-escalations\n",
            "    - name: refund-agent-escalations\n    - name: refund-agent-manual\n",
        )
    )
    report = drain(ac, "refund-agent", divert=False)
    assert report.exit_code is ExitCode.OK
    outcomes = {r.target.split("/")[-1]: r.outcome.value for r in report.run.results}
    assert outcomes["refund-agent-manual"] == "noop"  # disabled before: not touched
    assert mapping_state(seeded) == "Disabled"
    assert events.describe_rule(Name="refund-agent-escalations")["State"] == "DISABLED"
    schedule = seeded.client("scheduler").get_schedule(Name="refund-agent-hourly-sweep")
    assert schedule["State"] == "DISABLED"

    status = ac.status("refund-agent")
    intake = [lv for lv in status.levers if lv.state is LeverState.DRAINED]
    assert len(intake) == 4 and status.overall == "live, drained"

    resume = ac.plan_resume("refund-agent")
    assert sorted(s.step.kind for s in resume.steps) == [
        "events.disable_rule",
        "lambda.disable_event_source",
        "scheduler.disable_schedule",
    ]
    result = ac.execute(resume)
    assert result.exit_code is ExitCode.OK
    assert mapping_state(seeded) == "Enabled"
    assert events.describe_rule(Name="refund-agent-escalations")["State"] == "ENABLED"
    assert events.describe_rule(Name="refund-agent-manual")["State"] == "DISABLED"  # as before
    schedule = seeded.client("scheduler").get_schedule(Name="refund-agent-hourly-sweep")
    assert schedule["State"] == "ENABLED"
    after = ac.status("refund-agent")
    assert after.overall == "live, partially drained"  # the rule that was off before stays off
    assert [lv.target for lv in after.levers if lv.state is LeverState.DRAINED] == [
        "events:rule/default/refund-agent-manual"
    ]


def test_second_drain_changes_nothing(ac: Agentctl, seeded: Aws) -> None:
    drain(ac, "refund-agent", divert=False)
    again = drain(ac, "refund-agent", divert=False)
    assert {r.outcome.value for r in again.run.results} == {"noop"}
    assert again.exit_code is ExitCode.OK


def test_divert_moves_the_backlog_and_journals_it(ac: Agentctl, seeded: Aws) -> None:
    stop_mappings(seeded)
    put(seeded, "refund-requests", 55)
    report = drain(ac, "refund-agent")
    assert report.exit_code is ExitCode.OK and report.moved == 55
    assert depth(seeded, "refund-requests") == (0, 0)
    assert depth(seeded, "refund-requests-review") == (55, 0)
    assert report.run.incident is not None
    journal = ac.store.journal(report.run.incident.id)
    notes = [e for e in journal if e.kind == "sqs.move"]
    assert [n.message for n in notes] == [
        "diverting refund-requests → refund-requests-review",
        "diverted 55 messages refund-requests → refund-requests-review",
    ]
    assert notes[1].after is not None and notes[1].after["moved"] == 55
    intents = {e.kind for e in journal if e.event is Event.INTENT}
    assert "lambda.disable_event_source" not in intents  # already disabled by the test
    assert {"events.disable_rule", "scheduler.disable_schedule"} <= intents


def test_wait_times_out_on_the_fake_clock_with_work_in_flight(
    ac: Agentctl, seeded: Aws, clock: FakeClock
) -> None:
    stop_mappings(seeded)
    put(seeded, "refund-requests", 3)
    sqs = seeded.client("sqs")
    url = sqs.get_queue_url(QueueName="refund-requests")["QueueUrl"]
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2, VisibilityTimeout=3600)  # in flight
    plan = ac.plan_drain("refund-agent")
    started = clock.monotonic()
    result = ac.wait_in_flight(plan, timeout=120, interval=10)
    assert not result.done
    assert clock.monotonic() - started == pytest.approx(120)
    assert result.last.queues["refund-requests"].in_flight == 2
    assert result.last.queues["refund-requests"].queued == 1
    report = DrainReport(plan=plan, run=ac.execute(plan.plan), wait=result)
    assert report.exit_code is ExitCode.GATE_FAILED


def test_wait_ends_when_in_flight_work_finishes(
    ac: Agentctl, seeded: Aws, clock: FakeClock
) -> None:
    stop_mappings(seeded)
    put(seeded, "refund-requests", 2)
    sqs = seeded.client("sqs")
    url = sqs.get_queue_url(QueueName="refund-requests")["QueueUrl"]
    held = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2, VisibilityTimeout=3600)
    polls: list[int] = []

    def consumer_finishes_on_third_poll(reading: Any) -> None:
        polls.append(reading.busy)
        if len(polls) == 3:  # the agent finishes its work and deletes the messages
            for m in held["Messages"]:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])

    plan = ac.plan_drain("refund-agent")
    result = ac.wait_in_flight(
        plan, timeout=300, interval=5, on_poll=consumer_finishes_on_third_poll
    )
    assert result.done
    assert polls == [2, 2, 2, 0]
    assert result.waited_s == pytest.approx(15)


def test_wait_counts_running_function_executions(
    ac: Agentctl, seeded: Aws, clock: FakeClock
) -> None:
    seeded.client("cloudwatch").put_metric_data(
        Namespace="AWS/Lambda",
        MetricData=[
            {
                "MetricName": "ConcurrentExecutions",
                "Dimensions": [{"Name": "FunctionName", "Value": "refund-agent-planner"}],
                "Value": 4,
                "Timestamp": clock.now() - timedelta(seconds=30),
            }
        ],
    )
    plan = ac.plan_drain("refund-agent")
    result = ac.wait_in_flight(plan, timeout=20, interval=10)
    assert not result.done
    assert result.last.functions == {"refund-agent-worker": None, "refund-agent-planner": 4}


# -- bad paths ------------------------------------------------------------------------------------
def orders_spec(runbooks: Path, text: str) -> None:
    (runbooks / "orders-agent.yaml").write_text(text)


def test_missing_review_queue_in_spec_is_partial_and_loses_nothing(
    ac: Agentctl, orders_agent: Aws, runbooks: Path
) -> None:
    stop_mappings(orders_agent)
    orders_spec(runbooks, ORDERS_AGENT.replace("    review_queue: returns-review\n", ""))
    put(orders_agent, "returns", 7)
    put(orders_agent, "orders.fifo", 6)
    report = drain(ac, "orders-agent")
    assert report.exit_code is ExitCode.PARTIAL
    assert "returns: no review_queue in the spec" in " ".join(report.problems)
    assert depth(orders_agent, "returns") == (7, 0)  # untouched
    assert depth(orders_agent, "orders.fifo") == (0, 0)  # the other queue drained
    assert depth(orders_agent, "orders-review.fifo")[0] == 6

    orders_spec(runbooks, ORDERS_AGENT)  # the on-call adds the review queue and re-runs
    again = drain(ac, "orders-agent")
    assert again.exit_code is ExitCode.OK
    assert depth(orders_agent, "returns") == (0, 0)
    assert depth(orders_agent, "returns-review")[0] == 7


def test_queue_that_does_not_exist_is_named_and_others_still_drain(
    ac: Agentctl, orders_agent: Aws, runbooks: Path
) -> None:
    stop_mappings(orders_agent)
    orders_spec(runbooks, ORDERS_AGENT.replace("name: returns\n", "name: returnz\n"))
    put(orders_agent, "orders.fifo", 4)
    report = drain(ac, "orders-agent")
    assert report.exit_code is ExitCode.PARTIAL
    assert "SQS queue returnz does not exist" in report.problems
    assert depth(orders_agent, "orders-review.fifo")[0] == 4


def test_access_denied_on_one_queue_while_the_other_drains_then_rerun_finishes(
    ac: Agentctl, orders_agent: Aws, inject: Any
) -> None:
    stop_mappings(orders_agent)
    put(orders_agent, "returns", 25)
    put(orders_agent, "orders.fifo", 9)
    returns_url = orders_agent.client("sqs").get_queue_url(QueueName="returns")["QueueUrl"]
    inject(orders_agent, "sqs", "ReceiveMessage", when=lambda p: p["QueueUrl"] == returns_url)
    report = drain(ac, "orders-agent")
    assert report.exit_code is ExitCode.PARTIAL
    assert any("missing permission sqs:ReceiveMessage" in p for p in report.problems)
    assert depth(orders_agent, "returns") == (25, 0)
    assert depth(orders_agent, "orders-review.fifo")[0] == 9


def test_rerun_after_the_permission_is_fixed_finishes(
    ac: Agentctl, orders_agent: Aws, inject: Any
) -> None:
    stop_mappings(orders_agent)
    ids = put(orders_agent, "returns", 25)
    denied = {"on": True}
    inject(
        orders_agent,
        "sqs",
        "SendMessageBatch",
        when=lambda p: denied["on"] and p["QueueUrl"].endswith("/returns-review"),
    )
    first = drain(ac, "orders-agent")
    assert first.exit_code is ExitCode.PARTIAL
    assert any("cannot send to returns-review" in p for p in first.problems)
    assert depth(orders_agent, "returns") == (25, 0)  # nothing lost, nothing stuck in flight
    denied["on"] = False  # the on-call grants sqs:SendMessage and re-runs
    second = drain(ac, "orders-agent")
    assert second.exit_code is ExitCode.OK and second.moved == 25
    assert depth(orders_agent, "returns") == (0, 0)
    got = take_all(orders_agent, "returns-review")
    origins = [json.loads(m["MessageAttributes"][ORIGIN_ATTRIBUTE]["StringValue"]) for m in got]
    assert sorted(o["message_id"] for o in origins) == sorted(ids)


def test_divert_needs_work_queues(ac: Agentctl, runbooks: Path, seeded: Aws) -> None:
    with pytest.raises(BadInputError, match="nothing to divert: ticket-triager declares no work"):
        ac.plan_drain("ticket-triager", divert=True)


# -- redrive --------------------------------------------------------------------------------------
def test_redrive_moves_back_only_what_drain_diverted(ac: Agentctl, seeded: Aws) -> None:
    stop_mappings(seeded)
    ids = put(seeded, "refund-requests", 23)
    report = drain(ac, "refund-agent")
    assert report.moved == 23
    sqs = seeded.client("sqs")
    review_url = sqs.get_queue_url(QueueName="refund-requests-review")["QueueUrl"]
    sqs.send_message(QueueUrl=review_url, MessageBody="a human's note, not from the work queue")
    plan = ac.plan_redrive("refund-agent")
    assert plan.waiting == 24
    resume = ac.plan_resume("refund-agent")
    run = ac.execute(resume)
    moves = ac.redrive(plan, run, options=FAST)
    (move,) = moves
    assert move.result is not None and move.result.moved == 23 and move.result.skipped == 1
    back = take_all(seeded, "refund-requests")
    assert len(back) == 23
    assert all(ORIGIN_ATTRIBUTE not in m.get("MessageAttributes", {}) for m in back)
    bodies = sorted(json.loads(m["Body"])["ticket"] for m in back)
    assert bodies == list(range(23))
    assert len(ids) == 23
    (note,) = take_all(seeded, "refund-requests-review")
    assert note["Body"] == "a human's note, not from the work queue"


def test_seeding_twice_creates_nothing_new(seeded: Aws, runbooks: Path) -> None:
    assert seed(seeded, load_agent("refund-agent", runbooks)).created == []


def test_mapping_stuck_in_disabling_is_partial_and_the_rerun_finishes(
    ac: Agentctl, seeded: Aws
) -> None:
    # moto flips a mapping to Disabled at once and cannot show one stuck in `Disabling`: after
    # the (real, moto-applied) UpdateEventSourceMapping, GetEventSourceMapping is answered with
    # `Disabling` by a hook on that one call until the test lets it through.
    lam = seeded.client("lambda", retries=4)
    stuck = {"after_update": False, "on": True}

    def saw_update(**_: Any) -> None:
        stuck["after_update"] = True

    def disabling(params: dict[str, Any], **_: Any) -> Any:
        if not (stuck["after_update"] and stuck["on"]):
            return None
        uuid = params["url_path"].rstrip("/").rsplit("/", 1)[-1]
        http = type("Http", (), {"status_code": 200, "headers": {}, "content": b""})()
        return http, {"UUID": uuid, "State": "Disabling", "ResponseMetadata": {}}

    lam.meta.events.register("before-call.lambda.UpdateEventSourceMapping", saw_update)
    lam.meta.events.register("before-call.lambda.GetEventSourceMapping", disabling)
    try:
        first = drain(ac, "refund-agent", divert=False)
        assert first.exit_code is ExitCode.PARTIAL
        (failed,) = [r for r in first.run.results if r.outcome.value == "failed"]
        assert failed.action == "lambda.disable_event_source"
        assert failed.error is not None and "is still Disabling after 60s" in failed.error
        assert {r.outcome.value for r in first.run.results} == {"failed", "applied"}
        stuck["on"] = False  # AWS finishes
        second = drain(ac, "refund-agent", divert=False)
        assert second.exit_code is ExitCode.OK
        assert {r.outcome.value for r in second.run.results} == {"noop"}
        resume = ac.plan_resume("refund-agent")
        assert "lambda.disable_event_source" in {s.step.kind for s in resume.steps}
        assert ac.execute(resume).exit_code is ExitCode.OK
        assert mapping_state(seeded) == "Enabled"
    finally:
        lam.meta.events.unregister("before-call.lambda.UpdateEventSourceMapping", saw_update)
        lam.meta.events.unregister("before-call.lambda.GetEventSourceMapping", disabling)
