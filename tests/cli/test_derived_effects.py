"""What the on-call reads in text mode when effects come from the spec's extractors: each derived
effect says so, and values an extractor could not read are a warning, not a silence."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Run
from tests.trace.helpers import action, write
from tests.trace.test_extract import SPEC, bare

WINDOW = ["--since", "2026-11-24T01:00", "--until", "2026-11-25T01:00"]


@pytest.fixture(params=["cache", "off"])
def books(request: pytest.FixtureRequest, tmp_path: Path, cli_env: dict[str, str]) -> Path:
    root = tmp_path / "books"
    root.mkdir()
    (root / "refund-agent.yaml").write_text(SPEC)
    write(tmp_path / "audit" / "refund-agent", [bare(1), action(2), bare(3, result={})])
    cli_env["AGENTCTL_RUNBOOKS"] = str(root)
    cache = str(tmp_path / "trace-cache") if request.param == "cache" else "off"
    cli_env["AGENTCTL_TRACE_CACHE"] = cache
    return root


def test_trace_marks_derived_effects_and_not_recorded_ones(books: Path, cli: Run) -> None:
    derived = cli("trace", "act-000001")
    assert derived.returncode == 0, derived.stderr
    assert "payments refund re_1 create (reversible, derived from the spec)" in derived.stdout
    assert "orders order o-1 update (reversible, derived from the spec)" in derived.stdout
    recorded = cli("trace", "act-000002")
    assert recorded.returncode == 0, recorded.stderr
    assert "derived from the spec" not in recorded.stdout
    assert "warning" not in recorded.stderr


def test_actions_warns_about_values_the_extractors_could_not_read(books: Path, cli: Run) -> None:
    proc = cli("actions", "refund-agent", *WINDOW)
    assert proc.returncode == 0, proc.stderr
    assert "3 actions of refund-agent" in proc.stdout
    # act-000003's result is empty: neither the refund id nor the order key can be read
    assert "warning: 2 values the spec's effect extractors could not read" in proc.stderr
    assert "1x issue_refund resource_id result.refund.id: missing" in proc.stderr
    assert "1x issue_refund idempotency_key result.order_key: missing" in proc.stderr
    assert "e.g. action act-000003" in proc.stderr
