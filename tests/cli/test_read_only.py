"""Reading changes nothing, locally either: a plan, a --dry-run or a status run on a machine
that never recorded an incident leaves no incident store behind (a read-only state directory,
a CI runner). The first real change creates it."""

from __future__ import annotations

from pathlib import Path

from agentctl.aws import Aws
from tests.cli.conftest import Run, as_json


def test_dry_run_and_status_create_no_store_and_a_change_does(
    cli: Run, cli_env: dict[str, str], sandbox_aws: Aws, tmp_path: Path
) -> None:
    store = tmp_path / "state" / "agentctl" / "incidents.db"
    cli_env["AGENTCTL_STORE"] = str(store)
    audit = tmp_path / "audit"  # an audit directory with no records yet
    audit.mkdir()

    for args in (
        ("contain", "refund-agent", "--hard", "--dry-run"),
        ("shadow", "refund-agent", "--dry-run"),
        ("drain", "refund-agent", "--divert", "--dry-run"),
        ("status", "refund-agent"),
        ("incidents", "list"),
        (
            *("rollback", "refund-agent", "--since", "2026-11-24T00:00:00Z"),
            *("--source", str(audit), "--no-release", "--dry-run"),
        ),
    ):
        proc = cli(*args, "-o", "json")
        assert proc.returncode == 0, (args, proc.stderr)
        assert not store.exists() and not store.parent.exists(), args
    assert as_json(cli("status", "refund-agent", "-o", "json"))["overall"] == "live"

    proc = cli("contain", "refund-agent", "--yes", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    assert store.exists()
    assert as_json(cli("status", "refund-agent", "-o", "json"))["incident"] is not None


def test_resume_with_no_store_says_there_is_no_incident(
    cli: Run, cli_env: dict[str, str], sandbox_aws: Aws, tmp_path: Path
) -> None:
    store = tmp_path / "nowhere" / "incidents.db"
    cli_env["AGENTCTL_STORE"] = str(store)
    proc = cli("resume", "refund-agent", "--yes")
    assert proc.returncode == 2
    assert "has no open incident" in proc.stderr
    assert not store.exists()
    proc = cli("rollback", "refund-agent", "--incident", "INC-20261124-0001", "--dry-run")
    assert proc.returncode == 2
    assert "no incident was ever recorded here" in proc.stderr
    assert not store.exists()


def test_after_a_change_the_store_is_one_self_contained_file(
    cli: Run, cli_env: dict[str, str], sandbox_aws: Aws, tmp_path: Path
) -> None:
    # each command closes the store it opened: SQLite folds its write-ahead log into the
    # database file, so copying that one file (a backup, a hand-off) copies the incident
    store = tmp_path / "state" / "incidents.db"
    cli_env["AGENTCTL_STORE"] = str(store)
    for args in (("contain", "refund-agent", "--yes"), ("resume", "refund-agent", "--yes")):
        proc = cli(*args, "-o", "json")
        assert proc.returncode == 0, (args, proc.stderr)
        assert sorted(p.name for p in store.parent.iterdir()) == ["incidents.db"], args
    copy = tmp_path / "copy" / "incidents.db"
    copy.parent.mkdir()
    copy.write_bytes(store.read_bytes())
    cli_env["AGENTCTL_STORE"] = str(copy)
    [incident] = as_json(cli("incidents", "list", "-o", "json"))["incidents"]
    assert incident["agent"] == "refund-agent"
    shown = as_json(cli("incidents", "show", incident["id"], "-o", "json"))
    assert {e["event"] for e in shown["journal"]} >= {"intent", "applied", "verified"}
