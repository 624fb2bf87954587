"""The installed CLI end to end against a moto server: releases, rollback, dry run, JSON."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agentctl.aws import Aws
from tests.cli.conftest import (  # noqa: F401 - fixtures
    Run,
    as_json,
    cli,
    cli_env,
    endpoint,
    moto_server,
    sandbox_aws,
)
from tests.compensate.conftest import count, email, refund
from tests.compensate.test_planner import write

pytestmark = pytest.mark.e2e
PARAM = "/agents/refund-agent/release"
GOOD_MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
BAD_MODEL = "anthropic.claude-3-5-sonnet-20241022-v2:0"


@pytest.fixture
def story(cli: Run, sandbox_aws: Aws, tmp_path: Path) -> dict[str, str]:  # noqa: F811
    prompt, tools = tmp_path / "prompt.txt", tmp_path / "tools.yaml"
    prompt.write_text("Refund only eligible orders.")
    tools.write_text("issue_refund: {amount: number}\n")
    good = as_json(
        cli(
            "releases",
            "record",
            "refund-agent",
            "--model",
            GOOD_MODEL,
            "--prompt",
            str(prompt),
            "--tools",
            str(tools),
            "-o",
            "json",
        )
    )["release"]["id"]
    prompt.write_text("Refund every ticket.")
    bad = as_json(
        cli(
            "releases",
            "record",
            "refund-agent",
            "--model",
            BAD_MODEL,
            "--prompt",
            str(prompt),
            "--tools",
            str(tools),
            "-o",
            "json",
        )
    )["release"]["id"]
    assert cli("releases", "mark", good, "--good").returncode == 0
    sandbox_aws.client("ssm").put_parameter(
        Name=PARAM, Value=json.dumps({"release_id": bad}), Type="String"
    )
    now = datetime.now(UTC).replace(microsecond=0)
    audit = tmp_path / "audit" / "refund-agent"  # the spec's ../audit/refund-agent
    write(
        audit,
        [
            refund(i, amount=25.0, ts=now - timedelta(minutes=30) + timedelta(seconds=i))
            for i in range(10)
        ]
        + [email(40, ts=now - timedelta(minutes=20)), email(41, ts=now - timedelta(minutes=19))],
    )
    url = sandbox_aws.client("sqs").get_queue_url(QueueName="refund-compensations.fifo")["QueueUrl"]
    return {"good": good, "bad": bad, "url": url}


def test_rollback_end_to_end(cli: Run, sandbox_aws: Aws, story: dict[str, str], tmp_path: Path):  # noqa: F811
    window = ("--since", "1h", "--until", "now")
    dry = cli("rollback", "refund-agent", *window, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"release {story['bad']} → {story['good']}" in dry.stdout
    assert "10 refunds, $250 to reverse; 2 emails to follow up" in dry.stdout
    assert "dry run: nothing changed" in dry.stdout
    assert count(sandbox_aws, story["url"]) == 0

    refused = cli("rollback", "refund-agent", *window)
    assert refused.returncode == 5 and "--yes" in refused.stderr

    csv_path = tmp_path / "followups.csv"
    done = cli(
        "rollback",
        "refund-agent",
        *window,
        "--yes",
        "-o",
        "json",
        "--mitigations-csv",
        str(csv_path),
        "--reason",
        "prompt v2",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["compensation"]["completed"] == 10 and result["exit_code"] == 0
    assert result["release"][0]["outcome"] == "applied"
    assert count(sandbox_aws, story["url"]) == 10
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["tool"] for r in rows] == ["send_email", "send_email"]
    assert json.loads(rows[0]["details"])["to"] == "c40@example.com"

    again = cli("rollback", "refund-agent", *window, "--yes")
    assert again.returncode == 0, again.stderr
    assert "0 applied, 10 already done" in again.stdout
    assert count(sandbox_aws, story["url"]) == 10
    nothing = cli("rollback", "refund-agent", *window)  # nothing left: no question, no --yes
    assert nothing.returncode == 0, nothing.stderr

    listing = as_json(cli("releases", "list", "refund-agent", "-o", "json"))
    assert listing["active"] == story["good"]
    assert {r["id"]: r["mark"] for r in listing["releases"]}[story["good"]] == "good"

    shown = cli("incidents", "show", result["incident"])
    assert "compensation plan: 10 refunds" in shown.stdout


def test_bad_input_exits_2(cli: Run, story: dict[str, str]) -> None:  # noqa: F811
    proc = cli("rollback", "refund-agent", "--since", "yesterday-ish", "--dry-run")
    assert proc.returncode == 2 and "--since 'yesterday-ish': not a time" in proc.stderr
    proc = cli("rollback", "refund-agent", "--since", "1h", "--where", "args.amount >", "--dry-run")
    assert proc.returncode == 2
    proc = cli(
        "releases", "record", "refund-agent", "--model", "gpt-4o", "--prompt", "x", "--tools", "y"
    )
    assert proc.returncode == 2 and "floats" in proc.stderr
    proc = cli("releases", "mark", story["good"])
    assert proc.returncode == 2 and "exactly one of --good or --bad" in proc.stderr


def test_unknown_outcomes_are_listed_and_resolved_by_the_operator(
    cli: Run,  # noqa: F811
    sandbox_aws: Aws,  # noqa: F811
    story: dict[str, str],
    cli_env: dict[str, str],  # noqa: F811
    runbooks: Path,
) -> None:
    from agentctl.clock import FakeClock
    from agentctl.compensate.executor import Executor
    from agentctl.compensate.planner import plan_compensations
    from agentctl.compensate.source import load_actions
    from agentctl.compensate.sqlite_ledger import SqliteLedger
    from agentctl.incidents.sqlite import SqliteStore
    from agentctl.spec.loader import load_agent
    from tests.compensate.test_executor import Crash, _crash_at

    # A run ten minutes ago sent a batch and died before writing the outcome: past SQS's
    # dedup window, so nothing can prove whether it landed, and it must not be re-sent.
    spec = load_agent("refund-agent", runbooks)
    now = datetime.now(UTC)
    actions = load_actions(
        spec, sandbox_aws, since=now - timedelta(hours=1), until=now, spec_dir=runbooks
    )
    store = SqliteStore(Path(cli_env["AGENTCTL_STORE"]))
    ledger = SqliteLedger(store, FakeClock(now - timedelta(minutes=10)))
    with pytest.raises(Crash):
        Executor(
            ledger, sandbox_aws, spec, clock=ledger.clock, workers=1,
            checkpoint=_crash_at("after_dispatch", 0),
        ).run(plan_compensations(spec, actions))  # fmt: skip
    assert count(sandbox_aws, story["url"]) == 10

    window = ("--since", "1h", "--until", "now", "--no-release")
    run = cli("rollback", "refund-agent", *window, "--yes", "-o", "json")
    assert run.returncode == 3, run.stderr
    assert len(json.loads(run.stdout)["compensation"]["unknown"]) == 10
    assert count(sandbox_aws, story["url"]) == 10  # not re-sent

    listed = as_json(
        cli("compensations", "list", "refund-agent", "--status", "unknown", "-o", "json")
    )
    ids = sorted(i["action_id"] for i in listed["items"])
    assert len(ids) == 10
    for action_id in ids:  # the payments team confirmed all ten reversals landed
        proc = cli("compensations", "resolve", "refund-agent", action_id, "--applied")
        assert proc.returncode == 0, proc.stderr
    again = cli("compensations", "resolve", "refund-agent", ids[0], "--not-applied")
    assert again.returncode == 2 and "nothing to resolve" in again.stderr

    final = cli("rollback", "refund-agent", *window, "--yes", "-o", "json")
    assert final.returncode == 0, final.stderr
    assert json.loads(final.stdout)["compensation"]["already_done"] == 10
    assert count(sandbox_aws, story["url"]) == 10
    store.close_connection()


def test_rollback_on_a_dynamodb_store(cli: Run, sandbox_aws: Aws, story: dict[str, str]) -> None:  # noqa: F811
    store = ("--store", "dynamodb://agentctl-team")
    init = cli("store", "init", *store, "-o", "json")
    assert init.returncode == 0 and json.loads(init.stdout)["created"] is True
    # the releases were recorded in the SQLite store of the other fixture: record them here too
    done = cli("rollback", "refund-agent", "--since", "1h", "--no-release", "--yes", *store)
    assert done.returncode == 0, done.stderr
    assert "10 applied" in done.stdout
    again = cli("rollback", "refund-agent", "--since", "1h", "--no-release", "--yes", *store)
    assert "0 applied, 10 already done" in again.stdout
    incidents = as_json(cli("incidents", "list", *store, "-o", "json"))["incidents"]
    assert len(incidents) == 1 and incidents[0]["agent"] == "refund-agent"
    assert count(sandbox_aws, story["url"]) == 10
