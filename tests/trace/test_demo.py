"""The demo scenes, against a moto server, through the real CLI (as `make demo` runs them)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agentctl.demo import Demo
from agentctl.sandbox import seed
from agentctl.spec import load_agent
from agentctl.trace import demo as scenes


def test_agent_is_contained_within_the_cache_window_and_actions_explain_it(
    endpoint: str, tmp_path: Path, runbooks: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = Demo(endpoint, tmp_path, runbooks)
    seed(demo.aws, load_agent("refund-agent", runbooks))

    scenes.agent_runs(demo)
    demo.run("contain", "refund-agent", "--yes", "--reason", "refunds over the limit")
    scenes.after_contain(demo)

    out = capsys.readouterr().out
    m = re.search(r"first refused call came (-?\d+\.\d) s later \(cache 1 s\)", out)
    assert m, out
    # the 1 s cache, plus a ticket in flight, plus scheduling on a loaded 2-core box
    assert float(m.group(1)) < 4
    # every row of the --where listing is over the limit, and there are some
    amounts = [int(a) for a in re.findall(r'"amount": ?(\d+)', out.split("Which refunds")[1])]
    assert amounts and all(a > 30 for a in amounts)
    assert re.search(r"^[1-9]\d* actions of refund-agent .*status = 'refused'", out, re.M)
    assert "prompt refund-decision v13" in out
    assert "payments refund re_" in out
