"""`--where` sees records as they were written, in both engines: a field the writer left out is
null (not the model's default), a timestamp compares as the text written, a number written as a
string is a string. The same query gives the same answer with DuckDB and with the Python scan."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agentctl.errors import BadInputError
from agentctl.trace.records import to_json_dict
from agentctl.trace.service import Traces
from tests.trace.helpers import T0, action

WINDOW = (T0 - timedelta(hours=1), T0 + timedelta(days=1))


def written(n: int, **over: Any) -> str:
    data = to_json_dict(action(n))
    for key, value in over.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return json.dumps(data)


@pytest.fixture
def audit(tmp_path: Path) -> Path:
    day = tmp_path / "dt=2026-11-24"
    day.mkdir()
    rows = [
        written(1),
        written(2, effects=None, args=None),  # the writer left both out
        written(3, ts="2026-11-24T01:03:00+00:00"),  # an offset, not Z
        written(4, duration_ms="12"),  # a number written as a string
        written(5, duration_ms=12),
    ]
    (day / "actions-w1-000001.jsonl").write_text("\n".join(rows) + "\n")
    return tmp_path


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("effects is null", ["act-000002"]),
        ("args is not null", ["act-000001", "act-000003", "act-000004", "act-000005"]),
        ("ts >= '2026-11-24T01:04:00Z'", ["act-000004", "act-000005"]),
        ("ts = '2026-11-24T01:03:00+00:00'", ["act-000003"]),
        ("duration_ms > 5", ["act-000005"]),
    ],
)
def test_where_reads_what_was_written_in_both_engines(
    audit: Path, where: str, expected: list[str]
) -> None:
    for engine in ("python", "duckdb"):
        result = Traces().actions(
            "refund-agent", *WINDOW, source=str(audit), where=where, engine=engine
        )
        assert [a.action_id for a in result.actions] == expected, engine
        assert result.count == len(expected), engine


def test_a_negative_limit_is_bad_input(audit: Path) -> None:
    for engine in ("python", "duckdb"):
        with pytest.raises(BadInputError, match="--limit"):
            Traces().actions("refund-agent", *WINDOW, source=str(audit), limit=-1, engine=engine)
