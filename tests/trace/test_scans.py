"""The DuckDB engine's two scans (fast columns, exact lines) and its cache give the same answer:
every bad line counted under its reason, the same matches, the same listing. Every test runs
with the cache and without (tests/trace/conftest.py)."""

from __future__ import annotations

import json
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from agentctl.trace import cache as cache_mod
from agentctl.trace.query import iter_actions
from agentctl.trace.scan import ScanStats
from agentctl.trace.source import open_location
from tests.trace.helpers import T0, WINDOW, action, count, write


def _json(n: int, **over: Any) -> str:
    data = json.loads(json.dumps(action(n).model_dump(mode="json"))) | over
    return json.dumps({k: v for k, v in data.items() if v is not ...})


# (line, reason the exact scan gives it; None = a valid action)
AWKWARD = [
    (_json(1), None),
    ("{not json", "not_json"),
    ("[1, 2]", "not_object"),
    ('"a string"', "not_object"),
    (_json(2) + " " + _json(3), "not_json"),  # two records on one line
    ("{}", "unknown_version"),
    (_json(4, schema_version="1"), "unknown_version"),
    (_json(5, schema_version=2), "unknown_version"),
    (_json(6, schema_version=None), "unknown_version"),
    (_json(7, record_type=...), "unknown_record_type"),
    (_json(8, record_type="bogus"), "unknown_record_type"),
    (_json(9, ts="yesterday"), "invalid"),
    (_json(10, span_id=...), "invalid"),
    (_json(11, status=None), "invalid"),
    (_json(12, agent=None), "invalid"),
    (_json(13, ts="2026-11-24T03:13:00+02:00"), None),  # 01:13Z: in the window
    (_json(14, ts="2026-11-24T01:14:00"), None),  # no zone: UTC
    (_json(15, ts="2026-11-24T05:15:00+02:00"), None),  # 03:15Z: a valid action, outside
    # half a surrogate pair, escaped (json.dumps writes "\ud800"): no Unicode text, not JSON
    (_json(16, release_id="\ud800"), "not_json"),
    (_json(17, error="\ud83d\ude00"), None),  # a whole pair is one character (an emoji)
    # Unix time as a JSON number with an exponent (01:18Z), as the models read it
    (_json(18).replace('"2026-11-24T01:18:00Z"', "1.79548308e9"), None),
]


def _write_awkward(root: Path, crlf_from: int = 0) -> Path:
    path = root / "dt=2026-11-24" / "actions-w1-000001.jsonl"
    path.parent.mkdir(parents=True)
    lines = [line for line, _ in AWKWARD]
    body = "".join(
        line + ("\r\n" if i >= crlf_from else "\n") for i, line in enumerate(lines)
    ).replace(lines[3] + "\n", lines[3] + "\n   \n\n")  # blank lines are not records
    path.write_bytes(body.encode())
    return path


def _expected_bad() -> dict[str, int]:
    out: dict[str, int] = {}
    for _, reason in AWKWARD:
        if reason is not None:
            out[reason] = out.get(reason, 0) + 1
    return out


def _count(root: Path, where: str | None = None, stats: ScanStats | None = None) -> int:
    return count(root, where, stats=stats)


@pytest.mark.parametrize("crlf_from", [len(AWKWARD), 10])  # \n only; \n then \r\n
def test_every_bad_line_is_counted_under_its_reason_and_the_valid_ones_match(
    tmp_path: Path, crlf_from: int
) -> None:
    path = _write_awkward(tmp_path, crlf_from)
    for _ in range(2):  # with the cache: built, then read
        stats = ScanStats()
        assert _count(tmp_path, stats=stats) == 5
        assert dict(stats.bad) == _expected_bad()
        assert stats.lines == len(AWKWARD) and stats.files == 1
        assert len(stats.examples) == 5 and {e.file for e in stats.examples} == {str(path)}
        assert all(1 <= e.line <= len(AWKWARD) + 2 for e in stats.examples)

        listed = ScanStats()
        got = list(iter_actions(str(tmp_path), "refund-agent", *WINDOW, stats=listed))
        # 13 is 01:13Z and 14 is 01:14Z; 1 is 01:01Z; the listing is in time order
        assert [r.action_id for r in got] == [f"act-0000{n:02}" for n in (1, 13, 14, 17, 18)]
        assert got[3].error == "\U0001f600"  # the escaped pair, read as the one character
        assert dict(listed.bad) == _expected_bad() and listed.lines == len(AWKWARD)


def test_the_where_paths_asked_are_added_to_the_cache_and_old_batches_collected(
    tmp_path: Path, trace_cache: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "audit", [action(n) for n in range(10)])
    audit = tmp_path / "audit"
    assert _count(audit, "args.amount > 20") == 5  # amount = 5n: n = 5..9
    assert _count(audit, "args.order_id = 'o-3'") == 1
    assert _count(audit, "args.amount > 20 and status = 'executed'") == 5
    assert _count(audit, "result.refund_id in ('re_1', 're_2')") == 2
    assert _count(audit) == 10
    if trace_cache != "cache":
        return
    [manifest] = (tmp_path / "trace-cache").rglob("manifest.json")
    doc = json.loads(manifest.read_text())
    assert doc["paths"] == [
        "$.result.refund_id",
        "$.args.amount",
        "$.status",
        "$.args.order_id",
    ]
    batches = manifest.parent.parent / "batches"
    assert len(list(batches.glob("*.parquet"))) == 4  # each new path rebuilt the partition
    # a minute later the next build deletes the three no manifest names
    later = cache_mod.time.time() + 120
    monkeypatch.setattr(cache_mod.time, "time", lambda: later)
    assert _count(audit, "args.currency is null") == 10
    assert len(list(batches.glob("*.parquet"))) == 1


def test_a_limited_listing_is_the_first_rows_in_time_then_id_order(tmp_path: Path) -> None:
    # two files of the same day; two actions share one timestamp (ordered by action id)
    same = T0 + timedelta(minutes=30)
    write(tmp_path, [action(n) for n in (1, 40, 50)], name="actions-w1-000001.jsonl")
    write(
        tmp_path,
        [action(35, ts=same, action_id="act-b"), action(36, ts=same, action_id="act-a")],
        name="actions-w2-000001.jsonl",
    )
    window = (T0, T0 + timedelta(hours=2))
    for _ in range(2):
        got = [r.action_id for r in iter_actions(str(tmp_path), "refund-agent", *window, limit=3)]
        assert got == ["act-000001", "act-a", "act-b"]
        got = [r.action_id for r in iter_actions(str(tmp_path), "refund-agent", *window, limit=2)]
        assert got == ["act-000001", "act-a"]


def test_a_row_the_models_reject_is_counted_invalid_not_listed(tmp_path: Path) -> None:
    # `status` is not one of the four statuses: the scans accept the row (a string is there),
    # the validation of the listing rejects it and counts it.
    bad = _json(2, status="exploded")
    path = tmp_path / "dt=2026-11-24" / "actions-w1-000001.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text(_json(1) + "\n" + bad + "\n")
    stats = ScanStats()
    got = [r.action_id for r in iter_actions(str(tmp_path), "refund-agent", *WINDOW, stats=stats)]
    assert got == ["act-000001"]
    assert dict(stats.bad) == {"invalid": 1}
    assert [(e.file, e.line, e.reason) for e in stats.examples] == [(str(path), 2, "invalid")]


def test_a_file_that_is_not_utf8_is_read_like_the_python_engine_reads_it(tmp_path: Path) -> None:
    # A stray byte must not hide the record it is in (DuckDB's readers refuse such lines): the
    # file is read again with the byte replaced, as the python engine reads every file.
    from agentctl.trace.chain import find_actions

    path = tmp_path / "dt=2026-11-24" / "actions-w1-000001.jsonl"
    path.parent.mkdir(parents=True)
    broken = _json(2).replace('"T-2"', '"T-2 \\u00e9"').encode().replace(b"\\u00e9", b"\xff")
    path.write_bytes(_json(1).encode() + b'\n{"x": 1}\n' + broken + b"\n")
    for engine in ("duckdb", "python", "duckdb"):
        stats = ScanStats()
        got = list(iter_actions(str(tmp_path), "refund-agent", *WINDOW, stats=stats, engine=engine))
        assert [(r.action_id, r.unit_of_work) for r in got] == [
            ("act-000001", "T-1"),
            ("act-000002", "T-2 \ufffd"),
        ]
        assert dict(stats.bad) == {"unknown_version": 1} and stats.lines == 3
        assert [(e.line, e.reason) for e in stats.examples] == [(2, "unknown_version")]
    assert _count(tmp_path) == 2
    [found] = find_actions(str(tmp_path), "act-000002")
    assert found.unit_of_work == "T-2 \ufffd"


@pytest.mark.parametrize("name", ["actions-w1-000001.jsonl", "actions-w1-000001.jsonl.gz"])
def test_a_byte_order_mark_at_the_start_of_a_file_is_not_a_bad_line(
    tmp_path: Path, name: str
) -> None:
    import gzip

    from agentctl.trace.chain import find_actions

    path = tmp_path / "dt=2026-11-24" / name
    path.parent.mkdir(parents=True)
    body = b"\xef\xbb\xbf" + (_json(1) + "\n" + _json(2) + "\n").encode()
    path.write_bytes(gzip.compress(body) if name.endswith(".gz") else body)
    for engine in ("duckdb", "python", "duckdb"):
        stats = ScanStats()
        got = list(iter_actions(str(tmp_path), "refund-agent", *WINDOW, stats=stats, engine=engine))
        assert [r.action_id for r in got] == ["act-000001", "act-000002"], engine
        assert stats.bad_total == 0 and stats.lines == 2, engine
    assert _count(tmp_path) == 2
    assert [r.action_id for r in find_actions(str(tmp_path), "act-000001")] == ["act-000001"]


FIELDS = ("schema_version", "record_type", "agent", "ts", "trace_id", "span_id", "tool")
FIELDS += ("action_id", "idempotency_key", "unit_of_work", "status")
FIELDS += ("args", "effects", "duration_ms", "error", "release_id", "parent_span_id")
_EFFECT = {"system": "s", "resource_type": "t", "resource_id": "i", "operation": "o"}
odd_values = st.sampled_from(
    [
        ...,  # removed
        *(None, 1, 1.0, "1", "", "x", "action", [1], {"a": 1}, True, [], "12.5"),
        *("2026-11-24T01:00:00Z", "2026-11-24T01:00:00 Z", "2026-11-24T03:00:00+02:00"),
        *("2026-11-24 01:00", "2026-11-24", "2026-11-24T25:00:00Z", "yesterday"),
        # forms DuckDB's casts and pydantic's parser read differently: one rule for both
        *("2026-11-24T24:00:00Z", " 2026-11-24T01:00:00Z", "2026-11-24t01:00:00Z"),
        *("2026-11-24T01:00:00,5Z", "1.795914e9", "+1795914000", "2026-11-24_01:00:00Z"),
        *("2026-11-24T01:00:00+24:00", "2026-11-24T01:00:00+0200", "2026-11-24T1:00:00Z"),
        # years python's datetime cannot hold, which DuckDB's timestamps can
        *("0000-01-01T00:00:00Z", "9999-12-31T23:00:00-05:00", 2e15, "-3e14", "0001-01-01"),
        "0000-12-31T23:59-00:01",  # year 0 moved into year 1 by its offset: still invalid
        "\udc00",
        "a\ud800",
        "\ud83d\ude00",  # lone halves of a surrogate pair; a whole one
        # integers past the largest float (invalid as duration_ms), and infinity (valid)
        10**309,
        -(10**309),
        1e400,
        *("executed", "refused", "Executed"),
        # effects, valid or not as the models take them
        [_EFFECT | {"reversible": True}],
        [_EFFECT | {"reversible": "yes"}],
        [_EFFECT | {"reversible": 2}],
        [_EFFECT | {"reversible": 1.0, "idempotency_key": None, "details": {}}],
        [_EFFECT | {"reversible": False, "details": None}],
        [_EFFECT | {"reversible": False, "idempotency_key": 3}],
        [{"system": "s", "reversible": True}],
        [_EFFECT | {"reversible": True}, "x"],
    ]
)
lines = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), odd_values, max_size=2).map(
        lambda over: _json(1, **over)  # a valid action with some fields replaced or removed
    ),
    st.sampled_from(["{", "[]", "null", "{} {}", '{"schema_version": 1}', "  {}  "]),
)


def one_line_files(tmp: str, lines: list[str]) -> list[str]:
    """One file per line under ``tmp`` (a scan's row then names its line by the file); their
    paths, in the lines' order."""
    paths = [str(Path(tmp) / f"{i}.jsonl") for i in range(len(lines))]
    for path, line in zip(paths, lines, strict=True):
        Path(path).write_text(line + "\n")
    return paths


def _python_bad(line: str) -> bool:
    """Whether the python engine counts the line bad."""
    from agentctl.trace.scan import decode_lines, validate

    stats = ScanStats()
    for number, data in decode_lines("f", [line], stats):
        validate("f", number, data, stats)
    return stats.bad_total > 0


@settings(max_examples=150, deadline=None)
@given(st.lists(lines, min_size=1, max_size=8))
@example([_json(1, ts="2026-11-24T01:00:00 Z"), _json(1, schema_version=1.0)])
@example([_json(1, span_id=...), _json(1, status=None), _json(1, record_type="input")])
@example([_json(1, ts="0000-01-01T00:00:00Z"), _json(1, ts="9999-12-31T23:00:00-05:00")])
@example([_json(1, ts=2e15), _json(1, ts="-300000000000000"), _json(1, ts="0001-01-01")])
@example([_json(1, ts="0000-12-31T23:59-00:01"), _json(1, duration_ms=10**309)])
@example([_json(1, duration_ms=-(10**309)), _json(1, duration_ms=1e400)])
@example(
    [_json(1, status="bogus"), _json(1, action_id=5), _json(1, effects="x"), _json(1, args=[])]
)
def test_the_fast_scan_flags_exactly_the_lines_the_exact_scan_calls_bad(body: list[str]) -> None:
    from agentctl.trace import duck

    with tempfile.TemporaryDirectory() as tmp:
        paths = one_line_files(tmp, body)
        con = duck.connect()
        fast = dict(
            con.execute(f"SELECT file, bad FROM ({duck._fast([])})", {"files": paths}).fetchall()
        )
        exact = dict(
            con.execute(
                f"{duck._classified()} SELECT file, bad FROM c", {"files": paths}
            ).fetchall()
        )
        con.close()
    for i, line in enumerate(body):
        assert fast[i] is (exact[paths[i]] is not None), (line, exact[paths[i]])
        assert fast[i] is _python_bad(line), line


def test_where_paths_named_like_the_columns_the_engine_adds(tmp_path: Path) -> None:
    # `file`, `filename`, `t`, `fi`, `bad` are record fields like any other to --where
    extra = {"filename": "a.txt", "t": 1, "fi": 2, "bad": True, "file": "x"}
    write(tmp_path, [action(1, **extra), action(2)])
    for _ in range(2):
        assert _count(tmp_path, "filename = 'a.txt' and t = 1 and fi = 2 and file = 'x'") == 1
        assert _count(tmp_path, "bad = true") == 1
        assert _count(tmp_path, "bad is null") == 1
        assert _count(tmp_path, "ts = '2026-11-24T01:02:00Z' or schema_version = 1") == 2
        assert _count(tmp_path, "ts = '2026-11-24T01:02:00Z'") == 1


def test_a_count_over_days_cached_earlier_and_days_read_now(tmp_path: Path) -> None:
    write(tmp_path, [action(n * 60 * 12) for n in range(6)])  # two a day, three days

    def over(days: int, where: str | None = None) -> int:
        return count(tmp_path, where, window=(T0, T0 + timedelta(days=days)))

    assert over(1) == 2  # day 1 cached (with the cache on)
    assert over(3) == 6  # day 1 from the cache, days 2 and 3 read now
    # actions at minutes 0, 720, ..., 3600 (amount = 5 x minute); 2880 is the 2-day bound
    assert over(3, "args.amount >= 3600") == 5
    assert over(2, "args.amount >= 3600") == 3


def test_a_version_1_cache_is_replaced_not_read(tmp_path: Path, trace_cache: str) -> None:
    write(tmp_path / "audit", [action(1), action(2)])
    if trace_cache != "cache":
        return
    location = open_location(str(tmp_path / "audit"))
    entry = cache_mod.PartitionCache(tmp_path / "trace-cache").entry(
        location.url, "dt=2026-11-24", "actions"
    )
    entry.manifest.parent.mkdir(parents=True)
    entry.manifest.write_text(json.dumps({"version": 1, "files": [], "stats": {}}))
    old = entry.manifest.parent / "records.parquet"
    old.write_bytes(b"PAR1 rows of an older agentctl")
    assert _count(tmp_path / "audit") == 2
    assert (
        not old.exists()
        and json.loads(entry.manifest.read_text())["version"] == cache_mod.CACHE_VERSION
    )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(-2e10, 2e10),  # seconds
            st.integers(-(2 * 10**10), 2 * 10**10),
            st.floats(2e10, 2.6e14),  # milliseconds (past 2e10)
            st.integers(2 * 10**10 + 1, 26 * 10**13),
            st.floats(-6.3e13, -2e10),
            st.floats(-1e-3, 1e-3),  # 1e-169 and the like: exponent forms
        ),
        min_size=1,
        max_size=20,
    ),
    st.booleans(),
)
@example([1.0078125, -1.0078125, 178170125487123.8, 253402300799999, 253402300800000], False)
@example([1.0078125, 1795914000.5, 41389688120118.06, -62135596800001], True)
@example([7.108011921714689e-169, 1.7e9, -2.5e-05], False)
@example([7.108011921714689e-169, 1.7e9], True)
def test_a_numeric_timestamp_reads_to_the_microsecond_as_the_models_read_it(
    values: list[float], as_text: bool
) -> None:
    # Unix seconds (milliseconds past 2e10), as a JSON number or a string of one: the fraction
    # rounded half away from zero, as pydantic does (dividing by 1000 as a double was off by
    # microseconds far out, and half-microseconds rounded the other way). A JSON number may
    # have an exponent (1.7e9), a string may not.
    from agentctl.trace import duck
    from agentctl.trace.records import ActionRecord, to_json_dict

    def text(v: float) -> str:
        return repr(v) if isinstance(v, float) else str(v)

    with tempfile.TemporaryDirectory() as tmp:
        paths = one_line_files(tmp, [_json(1, ts=text(v) if as_text else v) for v in values])
        con = duck.connect()
        fast = {
            f: (bad, ts)
            for f, bad, ts in con.execute(
                f"SELECT file, bad, ts FROM ({duck._fast([])})", {"files": paths}
            ).fetchall()
        }
        exact = dict(
            con.execute(
                f"{duck._classified()} SELECT file, ts::TIMESTAMP FROM c", {"files": paths}
            ).fetchall()
        )
        con.close()
    for i, v in enumerate(values):
        try:
            data = to_json_dict(action(1)) | {"ts": text(v) if as_text else v}
            model = ActionRecord.model_validate(data).ts.replace(tzinfo=None)
        except ValueError:
            model = None
        assert exact[paths[i]] == model, v
        # the fast scan reads ts as text: `1e-169` it flags, for the exact scan to decide
        assert fast[i][1] == model or (fast[i] == (True, None) and "e" in repr(v)), v
