"""The strict scan (duck._strict): the cheaper first read of counts and cache builds. A line it
does not flag must be one the models accept; the files where it flags a line, and every file
when it fails, are read again by the fast scan, so counts and reports stay those of the python
engine. Every test runs with the cache and without (tests/trace/conftest.py)."""

from __future__ import annotations

import json
import re
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from agentctl.trace import duck
from agentctl.trace.query import iter_actions
from agentctl.trace.records import ActionRecord, to_json_dict
from agentctl.trace.scan import ScanStats
from tests.trace.helpers import WINDOW, action, count, write
from tests.trace.test_scans import _json, _python_bad, lines, one_line_files

_EFFECT = {"system": "s", "resource_type": "t", "resource_id": "i", "operation": "o"}


def _strict_flags(body: list[str], paths: list[str]) -> dict[int, bool] | None:
    """``{line index: flagged}`` from the strict scan over one file per line; None when it
    fails (the caller then reads every file with the fast scan)."""
    with tempfile.TemporaryDirectory() as tmp:
        files = one_line_files(tmp, body)
        con = duck.connect()
        try:
            rows = con.execute(
                f"SELECT file, bad FROM ({duck._strict(paths)})", {"files": files}
            ).fetchall()
        except duckdb.Error:
            return None
        finally:
            con.close()
    return dict(rows)


@settings(max_examples=80, deadline=None)
@given(st.lists(lines, min_size=1, max_size=6))
@example([_json(1, effects=[_EFFECT | {"reversible": "yes"}]), _json(2, record_type="input")])
@example([_json(1, effects=[_EFFECT | {"reversible": True, "details": None}])])
@example([_json(1, effects=[_EFFECT | {"reversible": 2}]), _json(2, duration_ms="12.5")])
@example([_json(1, agent=5), _json(2, trace_id=""), _json(3, error=3), _json(4, ts="yesterday")])
@example(
    [_json(1, duration_ms=10**309), _json(2, duration_ms=-(10**309)), _json(3, duration_ms=1e400)]
)
def test_a_line_the_strict_scan_passes_is_one_the_models_accept(body: list[str]) -> None:
    for paths in ([], ["$.args.amount"], ["$.args"], ["$.result.refund_id", "$.args.order_id"]):
        flags = _strict_flags(body, paths)
        if flags is None:
            continue  # it failed: the fast scan reads these files instead
        for i, line in enumerate(body):
            if not flags[i]:
                assert not _python_bad(line), (paths, line)


@pytest.mark.parametrize("paths", [[], ["$.args.amount"], ["$.args"], ["$.result.refund_id"]])
def test_actions_as_the_sdk_writes_them_pass_the_strict_scan(paths: list[str]) -> None:
    # the common case the strict scan exists for: no line flagged, nothing read twice
    body = [json.dumps(line) for line in _sdk_lines()]
    flags = _strict_flags(body, paths)
    assert flags == dict.fromkeys(range(len(body)), False)


# the SDK's form, which the strict scan takes (``ts`` otherwise flagged, then decided exactly)
_SDK_TS = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{6})?Z"
)
_TS_CHARS = "0123456789-:.TZtz +\t\n/"


@st.composite
def _mutated_ts(draw: st.DrawFn) -> str:
    """An SDK timestamp with one to three characters replaced, moved, inserted or dropped."""
    text = list(draw(st.sampled_from(["2026-11-24T01:02:03.456789Z", "0999-01-01T23:59:59Z"])))
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(text) - 1))
        char = draw(st.sampled_from(_TS_CHARS))
        how = draw(st.sampled_from(["replace", "move", "insert", "drop"]))
        if how == "replace":
            text[i] = char
        elif how == "move":  # one out, one in elsewhere: the length stays
            del text[i]
            text.insert(draw(st.integers(0, len(text))), char)
        elif how == "insert":
            text.insert(i, char)
        elif len(text) > 1:
            del text[i]
    return "".join(text)


@settings(max_examples=400, deadline=None)
@given(st.lists(_mutated_ts(), min_size=1, max_size=50))
@example(["202-11-24T01:02:03.4567891Z", " 026-11-24T01:02:03.456789Z", "\t026-11-24T01:02:03Z"])
@example(["2026-11-24T01:02:03.45678Z ", "2026-1-24T01:02:03.4567891Z", "0000-01-01T00:00:00Z"])
def test_the_strict_timestamp_is_the_sdk_form_with_the_models_value(texts: list[str]) -> None:
    # strptime also takes short fields and white space; the length and the first and last
    # characters leave it only the full form (duck._ts_sdk_sql)
    con = duck.connect()
    rows = con.execute(
        f"SELECT s, {duck._ts_sdk_sql('s')} FROM (SELECT unnest($texts) AS s)", {"texts": texts}
    ).fetchall()
    con.close()
    for text, value in rows:
        if value is not None:
            assert _SDK_TS.fullmatch(text), text
            model = ActionRecord.model_validate(to_json_dict(action(1)) | {"ts": text}).ts
            assert value == model.replace(tzinfo=None), text


def test_the_strict_timestamp_takes_both_forms_the_sdk_writes() -> None:
    con = duck.connect()
    texts = ["2026-11-24T01:02:03.456789Z", "2026-11-24T01:02:03Z", "0001-01-01T00:00:00Z"]
    got = con.execute(
        f"SELECT {duck._ts_sdk_sql('s')} FROM (SELECT unnest($texts) AS s)", {"texts": texts}
    ).fetchall()
    con.close()
    assert [v for (v,) in got] == [
        datetime(2026, 11, 24, 1, 2, 3, 456789),
        datetime(2026, 11, 24, 1, 2, 3),
        datetime(1, 1, 1),
    ]


def _sdk_lines() -> list[dict[str, Any]]:
    return [
        to_json_dict(action(1)),
        to_json_dict(action(2, effects=[], error=None, duration_ms=12)),
        to_json_dict(action(3, status="failed", error="boom", duration_ms=-0.5)),
        to_json_dict(action(4, args={}, release_id=None, parent_span_id="p")),
    ]


def _count(root: Path, where: str | None = None) -> tuple[int, ScanStats]:
    stats = ScanStats()
    return count(root, where, stats=stats), stats


def _python(root: Path, where: str | None = None) -> tuple[int, ScanStats]:
    stats = ScanStats()
    got = list(
        iter_actions(str(root), "refund-agent", *WINDOW, where=where, stats=stats, engine="python")
    )
    return len(got), stats


@pytest.fixture
def fast_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files parameter of every fast-scan relation built: ``$files`` (all the files) or
    ``$subset`` (those another scan flagged)."""
    reads: list[str] = []
    real_fast = duck._fast

    def spy(paths: list[str], source: str = "$files") -> str:
        reads.append(source)
        return real_fast(paths, source)

    monkeypatch.setattr(duck, "_fast", spy)
    return reads


@pytest.mark.parametrize("where", [None, "args.amount > 12"])
def test_flagged_files_are_decided_line_by_line_and_clean_ones_are_not_read_twice(
    tmp_path: Path, fast_reads: list[str], where: str | None
) -> None:
    write(tmp_path, [action(n) for n in range(1, 6)], name="actions-w1-000001.jsonl")
    odd = [
        _json(6),
        _json(7, effects=[_EFFECT | {"reversible": "yes"}]),  # valid: flagged, then accepted
        _json(8, agent=5),  # invalid: flagged, then counted bad
        _json(9, record_type="input"),  # another record type: flagged, then accepted
        _json(10, effects=[_EFFECT | {"reversible": True}]),  # no details: valid
    ]
    write(tmp_path, odd, name="actions-w2-000001.jsonl")
    for _ in range(2):  # with the cache: built, then read
        fast_reads.clear()
        count, stats = _count(tmp_path, where)
        expected, python = _python(tmp_path, where)
        assert count == expected == (8 if where is None else 6)
        assert dict(stats.bad) == dict(python.bad) == {"invalid": 1}
        assert stats.lines == python.lines == 10
        # only the file with flagged lines went through the fast scan (none once cached)
        assert set(fast_reads) <= {"$subset"}


def test_lines_that_do_not_fit_the_types_are_decided_by_the_slower_scans(
    tmp_path: Path,
) -> None:
    write(tmp_path, [action(n) for n in range(1, 6)], name="actions-w1-000001.jsonl")
    broken = [_json(6, args=["not", "an", "object"]), _json(7, status="bogus"), "{not json"]
    write(tmp_path, broken, name="actions-w2-000001.jsonl")
    for _ in range(2):
        count, stats = _count(tmp_path)
        expected, python = _python(tmp_path)
        assert count == expected == 5
        assert dict(stats.bad) == dict(python.bad) == {"invalid": 2, "not_json": 1}
        assert stats.lines == python.lines == 8


def test_a_cache_built_from_strict_and_fast_rows_answers_later_queries(tmp_path: Path) -> None:
    records = [action(n) for n in range(1, 9)]
    write(tmp_path, records[:4], name="actions-w1-000001.jsonl")
    odd = [_json(5, effects=[_EFFECT | {"reversible": "no"}]), _json(6, span_id="")]
    write(tmp_path, [*odd, *records[6:]], name="actions-w2-000001.jsonl")
    for where in (None, "args.amount > 12", "args.order_id = 'o-5'", None):
        count, stats = _count(tmp_path, where)
        expected, python = _python(tmp_path, where)
        assert count == expected
        assert dict(stats.bad) == dict(python.bad) == {"invalid": 1}


@pytest.mark.parametrize("literal", ["{x}", "{}", '{"a": 1}', "{0}"])
def test_a_where_literal_with_braces_is_counted(tmp_path: Path, literal: str) -> None:
    write(tmp_path, [action(1, args={"order_id": literal, "amount": 5}), action(2)])
    where = f"args.order_id = '{literal}'"
    count, _ = _count(tmp_path, where)
    expected, _ = _python(tmp_path, where)
    assert count == expected == 1


@pytest.mark.parametrize("where", ["e.x = 1", "order.x = 1", "select = 1", "lambda.x = 1"])
def test_where_names_that_are_sql_keywords_or_the_lambda_name(tmp_path: Path, where: str) -> None:
    extra = {"e": {"x": 1}, "order": {"x": 1}, "select": 1, "lambda": {"x": 1}}
    write(tmp_path, [_json(1, **extra), _json(2)], name="actions-w1-000001.jsonl")
    for _ in range(2):
        count, stats = _count(tmp_path, where)
        expected, _ = _python(tmp_path, where)
        assert count == expected == 1 and stats.bad_total == 0


def test_a_half_written_last_line_sends_only_its_file_to_the_fast_scan(
    tmp_path: Path, fast_reads: list[str]
) -> None:
    # a writer still appending (or one that crashed) leaves a partial last line: the strict
    # read fails on it, names the file, and reads the others again without it
    write(tmp_path, [action(n) for n in range(1, 4)], name="actions-w1-000001.jsonl")
    [path] = write(tmp_path, [action(n) for n in range(4, 7)], name="actions-w2-000001.jsonl")
    with path.open("a") as f:
        f.write(_json(7)[:40])
    write(tmp_path, [action(n) for n in range(8, 10)], name="actions-w3-000001.jsonl")
    for where in (None, "args.amount > 12"):
        fast_reads.clear()
        count, stats = _count(tmp_path, where)
        expected, python = _python(tmp_path, where)
        assert count == expected == (8 if where is None else 6)
        assert dict(stats.bad) == dict(python.bad) == {"not_json": 1}
        assert fast_reads == ["$subset"]


def test_a_file_with_old_mac_line_ends_is_counted_and_listed_like_the_python_engine(
    tmp_path: Path,
) -> None:
    # CR alone ends the lines: DuckDB's JSON reader sees one bad line, its line reader three
    # good ones; the files the faster scans flag are decided by the exact scan
    path = tmp_path / "dt=2026-11-24" / "actions-w1-000001.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes("\r".join(_json(n) for n in (1, 2, 3)).encode() + b"\r")
    write(tmp_path, [action(4)], name="actions-w2-000001.jsonl")
    for _ in range(2):
        count, stats = _count(tmp_path)
        expected, python = _python(tmp_path)
        assert count == expected == 4
        assert stats.lines == python.lines == 4 and stats.bad_total == python.bad_total == 0
        listed = list(iter_actions(str(tmp_path), "refund-agent", *WINDOW, stats=ScanStats()))
        assert [r.action_id for r in listed] == [f"act-00000{n}" for n in (1, 2, 3, 4)]
