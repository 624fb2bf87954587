"""What a script's `-o json` run of `actions` / `trace` imports.

Every query pays the CLI's start-up before it reads a byte; `bench/trace.py` times it. Two costs
stay out of a JSON run: rich (only text output draws tables) and the agent-side SDK package
(the trace readers need the file layout, not the agent, kill switch and sinks). A third stays
out of a DuckDB count: pydantic (~50 ms), which only what validates records in Python needs (the
python engine, a listing, a lookup). Each test runs the real command in a fresh interpreter,
checks its output, and then which modules it loaded; the text-mode test shows that the check
does see rich when a command draws with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentctl.clock import FakeClock
from agentctl.sdk import Agent, LocalJsonlSink, ToolCall, Writer

WINDOW = ["--since", "2026-11-24T02:00", "--until", "2026-11-24T04:00"]

# Runs agentctl's entry point, then reports the loaded modules of interest on the last line of
# stderr and exits with the command's own code.
RUN = """
import json, sys
from agentctl.cli.main import main
try:
    main(sys.argv[1:])
    code = 0
except SystemExit as exc:
    code = exc.code
watched = sorted(
    m for m in sys.modules
    if m in ("rich", "pydantic") or m.startswith(("rich.", "agentctl.sdk"))
)
sys.stderr.write("\\nLOADED " + json.dumps(watched) + "\\n")
raise SystemExit(code)
"""


def write_refunds(audit: Path, amounts: list[int]) -> list[str]:
    """Refunds written by the SDK, as an agent would; returns their idempotency keys."""
    clock = FakeClock()
    agent = Agent(
        "refund-agent",
        release_id="rel-9",
        writer=Writer(LocalJsonlSink(audit), background=False),
        now=clock.now,
    )
    keys: list[str] = []

    @agent.tool()
    def issue_refund(order_id: str, amount: int, *, call: ToolCall) -> dict[str, str]:
        keys.append(call.idempotency_key)
        return {"refund_id": f"re_{order_id}"}

    for n, amount in enumerate(amounts):
        with agent.unit_of_work(f"T-{n}", input={"ticket": n}):
            agent.record_model_call(model_requested="claude-x", prompt_template="refund")
            clock.advance(1)
            issue_refund(f"o-{n}", amount)
            clock.advance(60)
    assert agent.flush()
    return keys


def run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AGENTCTL_"))}
    env.update(
        {
            "AGENTCTL_TRACE_CACHE": "off",
            "AGENTCTL_RUNBOOKS": str(tmp_path / "no-runbooks"),
            "AWS_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "NO_COLOR": "1",
            "COLUMNS": "200",
        }
    )
    proc = subprocess.run(
        [sys.executable, "-c", RUN, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    head, _, last = proc.stderr.rstrip("\n").rpartition("\n")
    assert last.startswith("LOADED "), proc.stderr
    proc.stderr = head
    return proc, json.loads(last.removeprefix("LOADED "))


@pytest.fixture
def audit(tmp_path: Path) -> Path:
    return tmp_path / "audit" / "refund-agent"


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_actions_count_as_json_loads_neither_rich_nor_the_sdk(
    tmp_path: Path, audit: Path, engine: str
) -> None:
    write_refunds(audit, [10, 45, 20, 80])

    proc, loaded = run(
        tmp_path,
        "actions", "refund-agent", "--source", str(audit), *WINDOW,
        "--tool", "issue_refund", "--where", "args.amount > 30", "--count",
        "--engine", engine, "-o", "json",
    )  # fmt: skip

    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert (out["count"], out["engine"], out["scan"]["bad"]) == (2, engine, 0)
    assert loaded == ([] if engine == "duckdb" else ["pydantic"])  # python validates records


def test_actions_in_an_empty_window_as_json_loads_neither(tmp_path: Path, audit: Path) -> None:
    write_refunds(audit, [10, 45])

    proc, loaded = run(
        tmp_path,
        "actions", "refund-agent", "--source", str(audit),
        "--since", "2027-11-10", "--until", "2027-11-11", "--count", "-o", "json",
    )  # fmt: skip

    assert proc.returncode == 0, proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout)
    assert (out["count"], out["scan"]["files"]) == (0, 0)
    assert loaded == []


def test_trace_as_json_loads_neither(tmp_path: Path, audit: Path) -> None:
    keys = write_refunds(audit, [10, 45, 20])

    proc, loaded = run(tmp_path, "trace", keys[1], "--source", str(audit), "-o", "json")

    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    [chain] = out["traces"]
    assert chain["action"]["idempotency_key"] == keys[1]
    assert chain["action"]["args"] == {"order_id": "o-1", "amount": 45}
    assert [r["record_type"] for r in chain["chain"]][:2] == ["input", "model_call"]
    assert loaded == ["pydantic"]  # the lookup validates the records it shows


def test_a_bad_filter_as_json_is_reported_without_rich(tmp_path: Path, audit: Path) -> None:
    write_refunds(audit, [10])

    proc, loaded = run(
        tmp_path,
        "actions", "refund-agent", "--source", str(audit), *WINDOW,
        "--where", "args.amount >", "--count", "-o", "json",
    )  # fmt: skip

    assert proc.returncode == 2, proc.stderr
    assert json.loads(proc.stdout)["exit_code"] == 2
    assert "error:" in proc.stderr
    assert loaded == []


def test_text_output_draws_with_rich(tmp_path: Path, audit: Path) -> None:
    """The same query as text: rich is loaded (so the checks above can fail), the SDK is not."""
    write_refunds(audit, [10, 45, 20, 80])

    proc, loaded = run(
        tmp_path,
        "actions", "refund-agent", "--source", str(audit), *WINDOW,
        "--where", "args.amount > 30",
    )  # fmt: skip

    assert proc.returncode == 0, proc.stderr
    assert '"o-1"' in proc.stdout and '"o-3"' in proc.stdout and '"o-0"' not in proc.stdout
    assert "2 actions of refund-agent" in proc.stdout
    assert "rich.console" in loaded
    assert not [m for m in loaded if m.startswith("agentctl.sdk")]
