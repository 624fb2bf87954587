"""Damaged input never crashes a read and is never hidden: a gzip file cut short (a writer that
crashed mid-batch), bytes that are not gzip, a record the models refuse inside a decision chain."""

from __future__ import annotations

import gzip
import json
from datetime import timedelta
from pathlib import Path

import pytest

from agentctl.trace.records import to_json_dict
from agentctl.trace.service import Traces
from tests.trace.helpers import T0, action, write

WINDOW = (T0 - timedelta(hours=1), T0 + timedelta(days=1))
DAY = "dt=2026-11-24"


def lines(*numbers: int) -> bytes:
    return "".join(json.dumps(to_json_dict(action(n))) + "\n" for n in numbers).encode()


def test_a_gzip_file_cut_short_keeps_what_came_before_and_counts_the_damage(
    tmp_path: Path,
) -> None:
    (tmp_path / DAY).mkdir()
    whole = gzip.compress(lines(*range(1, 400)), mtime=0)
    (tmp_path / DAY / "actions-w1-000001.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    (tmp_path / DAY / "actions-w2-000001.jsonl").write_bytes(lines(500))

    result = Traces().actions("refund-agent", *WINDOW, source=str(tmp_path), engine="python")

    assert 1 < result.count < 400  # the records before the cut, and the other file's
    assert "act-000500" in {a.action_id for a in result.actions}
    assert result.stats.bad == {"truncated_gzip": 1}
    [example] = result.stats.examples
    # the damage is at the line after the last one read: this file gave count - 1 records
    assert example.file.endswith("actions-w1-000001.jsonl.gz") and example.line == result.count
    assert example.detail.startswith("EOFError")


def test_a_gz_file_that_is_not_gzip_is_one_bad_line_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / DAY).mkdir()
    (tmp_path / DAY / "actions-w1-000001.jsonl.gz").write_bytes(lines(1))  # plain text
    (tmp_path / DAY / "actions-w2-000001.jsonl").write_bytes(lines(2))

    result = Traces().actions("refund-agent", *WINDOW, source=str(tmp_path), engine="python")

    assert [a.action_id for a in result.actions] == ["act-000002"]
    assert result.stats.bad == {"truncated_gzip": 1}
    assert "BadGzipFile" in result.stats.examples[0].detail


@pytest.mark.parametrize("engine", ["duckdb", "python"])
def test_a_refused_record_in_a_chain_is_counted_not_an_internal_error(
    tmp_path: Path, engine: str
) -> None:
    target = action(2)
    write(tmp_path, [action(1), target])
    bad_call = {
        "schema_version": 1,
        "record_type": "model_call",
        "agent": "refund-agent",
        "trace_id": target.trace_id,
        "span_id": "ffff000000000001",
        "ts": "2026-11-24T01:01:30Z",
        "model_requested": "m",
        "input_tokens": "many",  # not a number: the models refuse it
    }
    decisions = tmp_path / DAY / "decisions-w1-000001.jsonl"
    decisions.write_text(json.dumps(bad_call) + "\n")

    result = Traces().trace("act-000002", source=str(tmp_path), engine=engine)

    [chain] = result.chains
    assert [r.record_type for r in chain.records] == ["action"]
    assert result.stats.bad == {"invalid": 1}


@pytest.mark.parametrize("engine", ["duckdb", "python"])
def test_trace_of_a_record_the_models_refuse_is_not_found_not_a_crash(
    tmp_path: Path, engine: str
) -> None:
    from agentctl.trace.chain import ActionNotFoundError

    good = to_json_dict(action(1))
    bogus = {**to_json_dict(action(7)), "status": "bogus"}
    (tmp_path / DAY).mkdir()
    (tmp_path / DAY / "actions-w1-000001.jsonl").write_text(
        json.dumps(good) + "\n" + json.dumps(bogus) + "\n"
    )
    with pytest.raises(ActionNotFoundError):
        Traces().trace("act-000007", source=str(tmp_path), engine=engine)
