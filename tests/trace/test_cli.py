"""`agentctl actions` and `agentctl trace`, run as the installed script (end to end)."""

from __future__ import annotations

import json
from pathlib import Path

from agentctl.aws import Aws
from agentctl.clock import FakeClock
from agentctl.sdk import Agent, LocalJsonlSink, S3Sink, ToolCall, Writer
from tests.cli.conftest import Run, as_json

WINDOW = ["--since", "2026-11-24T02:00", "--until", "2026-11-24T04:00"]


def refunds(writer: Writer, clock: FakeClock, amounts: list[int]) -> None:
    agent = Agent("refund-agent", release_id="rel-9", writer=writer, now=clock.now)

    @agent.tool()
    def issue_refund(order_id: str, amount: int, *, call: ToolCall) -> dict[str, str]:
        call.effect(
            "payments",
            "refund",
            f"re_{order_id}",
            "create",
            reversible=True,
            details={"amount": amount},
        )
        return {"refund_id": f"re_{order_id}"}

    for n, amount in enumerate(amounts):
        with agent.unit_of_work(f"T-{n}", input={"ticket": n}):
            agent.record_model_call(
                model_requested="claude-x",
                model_answered="claude-x-1",
                prompt_template="refund",
                prompt_version="v13",
            )
            clock.advance(1)
            issue_refund(f"o-{n}", amount)
            clock.advance(60)
    assert agent.flush()


def test_actions_reads_the_spec_audit_location_and_filters(
    cli: Run,
    runbooks: Path,
    clock: FakeClock,
) -> None:
    audit = runbooks.parent / "audit" / "refund-agent"  # `../audit/refund-agent` in the spec
    refunds(Writer(LocalJsonlSink(audit), background=False), clock, [10, 45, 20, 80])

    proc = cli("actions", "refund-agent", *WINDOW, "--where", "args.amount > 30", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    out = as_json(proc)
    assert out["count"] == 2 and out["scan"]["bad"] == 0
    assert [a["args"]["amount"] for a in out["actions"]] == [45, 80]
    assert out["source"] == str(audit.resolve())

    proc = cli("actions", "refund-agent", *WINDOW, "--limit", "1", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    limited = as_json(proc)
    assert limited["count"] == 4 and [a["args"]["amount"] for a in limited["actions"]] == [10]

    proc = cli("actions", "refund-agent", *WINDOW, "--tool", "issue_refund", "--count")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("4 actions of refund-agent")

    target = out["actions"][1]
    proc = cli("trace", target["action_id"], "-o", "json")
    assert proc.returncode == 0, proc.stderr
    [chain] = as_json(proc)["traces"]
    assert [r["record_type"] for r in chain["chain"]] == ["input", "model_call", "action"]
    assert chain["chain"][1]["prompt_version"] == "v13"

    proc = cli("trace", target["idempotency_key"], "--agent", "refund-agent")
    assert proc.returncode == 0, proc.stderr
    assert "model claude-x → claude-x-1 · prompt refund v13" in proc.stdout
    assert "payments refund re_o-3 create (reversible)" in proc.stdout


def test_corrupt_lines_are_reported_not_fatal(
    cli: Run,
    tmp_path: Path,
    clock: FakeClock,
) -> None:
    audit = tmp_path / "a"
    refunds(Writer(LocalJsonlSink(audit, writer_id="w"), background=False), clock, [50])
    with open(audit / "dt=2026-11-24" / "actions-w-000001.jsonl", "a") as f:
        f.write('{"truncated": \n{"schema_version": 7, "record_type": "action"}\n')
    proc = cli("actions", "refund-agent", *WINDOW, "--source", str(audit))
    assert proc.returncode == 0
    assert "1 actions of refund-agent" in proc.stdout
    assert "2 unreadable lines skipped (1 not_json, 1 unknown_version)" in proc.stderr
    assert "actions-w-000001.jsonl:2: not_json" in proc.stderr


def test_bad_input_exits_2_with_a_hint(cli: Run, tmp_path: Path) -> None:
    proc = cli("actions", "refund-agent", "--since", "yesterday-ish", "--source", str(tmp_path))
    assert proc.returncode == 2 and "not a time" in proc.stderr
    proc = cli(
        "actions",
        "refund-agent",
        *WINDOW,
        "--where",
        "args.amount >>> 3",
        "--source",
        str(tmp_path),
    )
    assert proc.returncode == 2 and "--where" in proc.stderr
    proc = cli("trace", "act-nope", "--source", str(tmp_path))
    assert proc.returncode == 1 and "no action" in proc.stderr


def test_s3_location_and_athena_dry_run(
    cli: Run,
    sandbox_aws: Aws,
    clock: FakeClock,
) -> None:
    s3 = sandbox_aws.client("s3")
    s3.create_bucket(Bucket="audit-bucket")
    refunds(Writer(S3Sink(s3, "audit-bucket", "refund-agent"), background=False), clock, [5, 35])
    src = ["--source", "s3://audit-bucket/refund-agent"]
    proc = cli(
        "actions", "refund-agent", *WINDOW, *src, "--where", "args.amount > 30", "-o", "json"
    )
    assert proc.returncode == 0, proc.stderr
    assert [a["args"]["amount"] for a in as_json(proc)["actions"]] == [35]

    proc = cli(
        "actions",
        "refund-agent",
        *WINDOW,
        *src,
        "--engine",
        "athena",
        "--dry-run",
        "--where",
        "args.amount > 30",
    )
    assert proc.returncode == 0, proc.stderr
    assert 'CREATE EXTERNAL TABLE IF NOT EXISTS "agentctl"."refund_agent_records"' in proc.stdout
    assert "dt BETWEEN '2026-11-24' AND '2026-11-24'" in proc.stdout
    assert "json_extract_scalar(line, '$.args.amount') AS DOUBLE) > 30.0" in proc.stdout
    assert "nothing was sent to Athena" in proc.stderr


def test_json_output_is_stable(cli: Run, tmp_path: Path, clock: FakeClock) -> None:
    refunds(Writer(LocalJsonlSink(tmp_path), background=False), clock, [1])
    out = json.loads(
        cli("actions", "refund-agent", *WINDOW, "--source", str(tmp_path), "-o", "json").stdout
    )
    assert set(out) == {
        "schema",
        "agent",
        "source",
        "since",
        "until",
        "tool",
        "where",
        "engine",
        "dry_run",
        "count",
        "shown",
        "actions",
        "scan",
        "derived_effects",
        "sql",
    }
    assert out["schema"] == "agentctl.actions/v1"
    assert out["since"] == "2026-11-24T02:00:00+00:00"
