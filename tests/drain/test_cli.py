"""The installed CLI against a moto server: drain, drain --divert, status, resume --redrive."""

from __future__ import annotations

import json

import pytest

from agentctl.aws import Aws
from tests.cli.conftest import Run, as_json, cli, cli_env, endpoint, moto_server, sandbox_aws
from tests.drain.conftest import depth, put

pytestmark = pytest.mark.e2e
__all__ = ["cli", "cli_env", "endpoint", "moto_server", "sandbox_aws"]  # fixtures


def mapping_state(aws: Aws) -> str:
    (m,) = aws.client("lambda").list_event_source_mappings(FunctionName="refund-agent-worker")[
        "EventSourceMappings"
    ]
    return str(m["State"])


def test_drain_divert_status_resume_redrive(cli: Run, sandbox_aws: Aws) -> None:
    put(sandbox_aws, "refund-requests", 30)
    proc = cli("drain", "refund-agent", "--divert", "--yes", "--reason", "refunding everything")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "drain refund-agent: plan" in out
    assert "disable event source mapping (refund-requests → refund-agent-worker)" in out
    assert "in-flight work finished" in out
    assert "diverted 30 message(s) refund-requests → refund-requests-review" in out
    assert mapping_state(sandbox_aws) == "Disabled"
    assert depth(sandbox_aws, "refund-requests") == (0, 0)
    assert depth(sandbox_aws, "refund-requests-review") == (30, 0)

    status = as_json(cli("status", "refund-agent", "-o", "json"))
    assert status["overall"] == "live, drained"
    drained = {lv["action"] for lv in status["levers"] if lv["state"] == "drained"}
    assert drained == {
        "lambda.disable_event_source",
        "events.disable_rule",
        "scheduler.disable_schedule",
    }

    again = cli("drain", "refund-agent", "--divert", "--yes")
    assert again.returncode == 0, again.stderr
    assert "diverted 0 message(s)" in again.stdout
    assert depth(sandbox_aws, "refund-requests-review") == (30, 0)

    resume = cli("resume", "refund-agent", "--redrive", "--yes")
    assert resume.returncode == 0, resume.stderr
    assert "moved 30 reviewed message(s) refund-requests-review → refund-requests" in resume.stdout
    assert mapping_state(sandbox_aws) == "Enabled"
    assert depth(sandbox_aws, "refund-requests-review") == (0, 0)
    assert depth(sandbox_aws, "refund-requests")[0] == 30

    timeline = as_json(cli("incidents", "list", "-o", "json"))["incidents"]
    (incident,) = timeline
    entries = as_json(cli("incidents", "show", incident["id"], "-o", "json"))["journal"]
    notes = [e["message"] for e in entries if e["kind"] == "sqs.move"]
    assert "diverted 30 messages refund-requests → refund-requests-review" in notes
    assert "redrove 30 messages refund-requests-review → refund-requests" in notes


def test_json_output_is_one_document(cli: Run, sandbox_aws: Aws) -> None:
    put(sandbox_aws, "refund-requests", 12)
    proc = cli("drain", "refund-agent", "--divert", "--yes", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["schema"] == "agentctl.drain/v1" and doc["exit_code"] == 0
    assert doc["moved"] == 12 and doc["wait"]["done"] is True
    (move,) = doc["moves"]
    assert (move["queue"], move["review_queue"], move["moved"]) == (
        "refund-requests",
        "refund-requests-review",
        12,
    )
    assert doc["queues"][0]["before"]["queued"] == 12


def test_without_yes_and_without_terminal_it_refuses(cli: Run, sandbox_aws: Aws) -> None:
    put(sandbox_aws, "refund-requests", 3)
    proc = cli("drain", "refund-agent", "--divert")
    assert proc.returncode == 5
    assert "refusing to drain refund-agent without confirmation" in proc.stderr
    assert mapping_state(sandbox_aws) == "Enabled"
    assert depth(sandbox_aws, "refund-requests") == (3, 0)


def test_dry_run_changes_and_moves_nothing(cli: Run, sandbox_aws: Aws) -> None:
    put(sandbox_aws, "refund-requests", 4)
    proc = cli("drain", "refund-agent", "--divert", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "--divert: 4 queued message(s) would move to review" in proc.stdout
    assert mapping_state(sandbox_aws) == "Enabled"
    assert depth(sandbox_aws, "refund-requests") == (4, 0)
    assert as_json(cli("incidents", "list", "-o", "json"))["incidents"] == []


def test_timeout_with_work_in_flight_exits_4(cli: Run, sandbox_aws: Aws) -> None:
    put(sandbox_aws, "refund-requests", 2)
    sqs = sandbox_aws.client("sqs")
    url = sqs.get_queue_url(QueueName="refund-requests")["QueueUrl"]
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2, VisibilityTimeout=600)
    proc = cli("drain", "refund-agent", "--yes", "--timeout", "1")
    assert proc.returncode == 4, proc.stderr
    assert "timed out after 1s with work in flight (refund-requests: 2 in flight)" in proc.stdout
    assert mapping_state(sandbox_aws) == "Disabled"  # intake stays stopped


def test_unknown_agent_is_bad_input(cli: Run, sandbox_aws: Aws) -> None:
    proc = cli("drain", "nobody", "--yes")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
