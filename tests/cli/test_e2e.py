"""The installed CLI against a moto server on 127.0.0.1: what the on-call sees."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentctl.aws import Aws
from tests.cli.conftest import Run, as_json

pytestmark = pytest.mark.e2e


def registry(aws: Aws) -> dict:
    value = aws.client("ssm").get_parameter(Name="/agents/refund-agent/tools")["Parameter"]["Value"]
    return json.loads(value)["tools"]


def test_contain_status_resume_cycle(cli: Run, sandbox_aws: Aws) -> None:
    contain = cli("contain", "refund-agent", "--yes", "--hard", "--reason", "bad refunds")
    assert contain.returncode == 0, contain.stderr
    assert "contain refund-agent: plan" in contain.stdout
    assert "incident INC-" in contain.stdout and "(opened)" in contain.stdout
    assert "4 changed" in contain.stdout
    assert all(not t["enabled"] for t in registry(sandbox_aws).values())

    status = cli("status", "refund-agent")
    assert status.returncode == 0
    assert "status refund-agent: contained" in status.stdout

    again = cli("contain", "refund-agent", "--yes", "--hard")
    assert again.returncode == 0
    assert "nothing to change: already in place" in again.stdout

    resume = cli("resume", "refund-agent", "--yes")
    assert resume.returncode == 0, resume.stderr
    assert all(t["enabled"] for t in registry(sandbox_aws).values())
    status = as_json(cli("status", "refund-agent", "--output", "json"))
    assert status["overall"] == "live"
    assert {lv["state"] for lv in status["levers"]} == {"live"}


def test_without_terminal_and_without_yes_it_refuses(cli: Run, sandbox_aws: Aws) -> None:
    proc = cli("contain", "refund-agent")
    assert proc.returncode == 5
    assert "refusing to contain refund-agent without confirmation" in proc.stderr
    assert "--yes" in proc.stderr
    assert all(t["enabled"] for t in registry(sandbox_aws).values())


def test_dry_run_shows_plan_and_changes_nothing(cli: Run, sandbox_aws: Aws, tmp_path: Path):
    proc = cli("contain", "refund-agent", "--dry-run")
    assert proc.returncode == 0
    assert "dry run, nothing changed" in proc.stdout
    assert "disable lookup_order, issue_refund, send_email" in proc.stdout
    assert all(t["enabled"] for t in registry(sandbox_aws).values())
    assert as_json(cli("incidents", "list", "-o", "json"))["incidents"] == []


def test_json_result_and_incident_timeline(cli: Run, sandbox_aws: Aws) -> None:
    proc = cli("contain", "refund-agent", "--yes", "-o", "json", "--reason", "r1")
    assert proc.returncode == 0
    result = as_json(proc)
    assert result["schema"] == "agentctl.run/v1"
    assert result["exit_code"] == 0 and result["changed"] == 2
    assert {s["outcome"] for s in result["steps"]} == {"applied"}
    incident_id = result["incident"]
    shown = as_json(cli("incidents", "show", incident_id, "-o", "json"))
    events = [(e["step"], e["event"]) for e in shown["journal"] if e["step"] == "deny-tools"]
    assert events == [
        ("deny-tools", "intent"),
        ("deny-tools", "applied"),
        ("deny-tools", "verified"),
    ]
    intent = shown["journal"][1]
    assert intent["reason"] == "r1" and intent["operator_arn"].startswith("arn:aws:sts::")
    text = cli("incidents", "show", incident_id)
    assert incident_id in text.stdout and "verified" in text.stdout


def test_global_options_work_after_the_command(cli: Run, sandbox_aws: Aws, cli_env) -> None:
    env = {k: v for k, v in cli_env.items() if k != "AWS_ENDPOINT_URL"}
    proc = cli(
        "status",
        "refund-agent",
        "--endpoint-url",
        cli_env["AWS_ENDPOINT_URL"],
        "-o",
        "json",
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert as_json(proc)["agent"] == "refund-agent"


def test_unknown_agent_is_one_line_no_traceback(cli: Run, sandbox_aws: Aws) -> None:
    proc = cli("contain", "refund-agnet", "--yes")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: unknown agent 'refund-agnet'")
    assert "hint: known agents in" in proc.stderr and "refund-agent" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_bad_yaml_names_file_and_line(cli: Run, runbooks: Path, sandbox_aws: Aws) -> None:
    (runbooks / "broken.yaml").write_text("name: broken\nowner: x\nrole: [unclosed\n")
    proc = cli("status", "broken")
    assert proc.returncode == 2
    assert "broken.yaml:4" in proc.stderr or "broken.yaml:3" in proc.stderr
    assert "invalid YAML" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_validate_lists_every_problem(cli: Run, runbooks: Path) -> None:
    bad = runbooks / "bad.yaml"
    bad.write_text(
        "name: bad\nowner: x\nrole: r\ntools:\n  - name: t\n    sidefx: true\ncolour: 1\n"
    )
    proc = cli("runbook", "validate", str(bad), str(runbooks / "refund-agent.yaml"))
    assert proc.returncode == 2
    assert f"{bad}:6: tools[0].sidefx: unknown key" in proc.stderr
    assert f"{bad}:5: tools[0].side_effects: required field is missing" in proc.stderr
    assert f"{bad}:7: colour: unknown key" in proc.stderr
    assert "1 valid, 1 invalid" in proc.stdout


def test_endpoint_unreachable(cli: Run, cli_env: dict[str, str]) -> None:
    env = {**cli_env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    proc = cli("status", "refund-agent", env=env)
    assert proc.returncode == 7
    assert "error: cannot reach http://127.0.0.1:9" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_credentials(cli: Run, cli_env: dict[str, str]) -> None:
    env = {
        k: v for k, v in cli_env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    }
    proc = cli("contain", "refund-agent", "--dry-run", env=env)
    assert proc.returncode == 7
    assert "error: no AWS credentials found" in proc.stderr
    assert "--profile" in proc.stderr


def test_missing_lever_target_is_partial_and_rerun_finishes(cli: Run, sandbox_aws: Aws) -> None:
    """The registry parameter is missing: IAM still applies, exit 3; once it exists, re-run."""
    ssm = sandbox_aws.client("ssm")
    value = ssm.get_parameter(Name="/agents/refund-agent/tools")["Parameter"]["Value"]
    ssm.delete_parameter(Name="/agents/refund-agent/tools")
    proc = cli("contain", "refund-agent", "--yes")
    assert proc.returncode == 3
    assert "partially applied" in proc.stdout
    assert "tool registry parameter /agents/refund-agent/tools does not exist" in proc.stdout
    ssm.put_parameter(Name="/agents/refund-agent/tools", Value=value, Type="String")
    rerun = cli("contain", "refund-agent", "--yes", "-o", "json")
    assert rerun.returncode == 0
    steps = {s["name"]: s["outcome"] for s in as_json(rerun)["steps"]}
    assert steps == {"deny-tools": "noop", "disable-registry": "applied"}


def test_shadow_on_and_off(cli: Run, sandbox_aws: Aws) -> None:
    assert cli("shadow", "refund-agent", "--yes").returncode == 0
    flag = sandbox_aws.client("ssm").get_parameter(Name="/agents/refund-agent/mode")
    assert flag["Parameter"]["Value"] == "shadow"
    assert "shadow" in as_json(cli("status", "refund-agent", "-o", "json"))["overall"]
    assert cli("shadow", "refund-agent", "--off", "--yes").returncode == 0
    flag = sandbox_aws.client("ssm").get_parameter(Name="/agents/refund-agent/mode")
    assert flag["Parameter"]["Value"] == "live"


def test_custom_runbook_step_and_check(cli: Run, sandbox_aws: Aws) -> None:
    proc = cli("contain", "ticket-triager", "--yes", "-o", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    steps = {s["name"]: s["outcome"] for s in as_json(proc)["steps"]}
    assert steps["pause-nightly-retriage"] == "applied"
    assert steps["check-rule-disabled"] == "applied"
    rule = sandbox_aws.client("events").describe_rule(Name="ticket-triager-nightly")
    assert rule["State"] == "DISABLED"
    assert cli("resume", "ticket-triager", "--yes").returncode == 0
    rule = sandbox_aws.client("events").describe_rule(Name="ticket-triager-nightly")
    assert rule["State"] == "ENABLED"


def test_version_and_module_entry(cli: Run) -> None:
    proc = cli("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("agentctl ")


def test_incident_markdown_report_and_close(cli: Run, sandbox_aws: Aws) -> None:
    reason = "a | b [/ticket-123] [see 42]"  # not rich markup: shown as typed
    result = as_json(cli("contain", "refund-agent", "--yes", "-o", "json", "--reason", reason))
    incident_id = result["incident"]
    report = cli("incidents", "show", incident_id, "--markdown")
    assert report.returncode == 0
    assert report.stdout.startswith(f"# {incident_id}: refund-agent")
    assert f"**Reason:** {reason}" in report.stdout
    listed = cli("incidents", "list")
    assert listed.returncode == 0 and "[/ticket-123] [see 42]" in listed.stdout
    shown = cli("incidents", "show", incident_id)
    assert shown.returncode == 0 and "[/ticket-123] [see 42]" in shown.stdout
    assert "| `ssm:/agents/refund-agent/tools` | registry.disable_tools |" in report.stdout
    refused = cli("incidents", "close", incident_id)
    assert refused.returncode == 2 and "still has 2 changed target(s)" in refused.stderr
    closed = cli("incidents", "close", incident_id, "--force")
    assert closed.returncode == 0 and f"{incident_id} closed" in closed.stdout
    listed = as_json(cli("incidents", "list", "--open", "-o", "json"))
    assert listed["incidents"] == []
    again = as_json(
        cli("contain", "refund-agent", "--yes", "-o", "json", "--tools", "lookup_order")
    )
    assert again["incident"] != incident_id  # a closed incident is not joined
    missing = cli("incidents", "show", "INC-20000101-0001")
    assert missing.returncode == 2 and "no incident 'INC-20000101-0001'" in missing.stderr
