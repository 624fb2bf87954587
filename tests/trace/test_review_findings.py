"""Regressions from the review of the DuckDB engine: each test failed before its fix. Every test
runs with the partition cache and without (tests/trace/conftest.py)."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agentctl.errors import BadInputError
from agentctl.trace.query import iter_actions
from agentctl.trace.scan import ScanStats
from tests.trace.helpers import T0, WINDOW, action, count

NAME = "dt=2026-11-24/actions-w1-000001.jsonl"


def _line(n: int, **over: Any) -> str:
    data = json.loads(json.dumps(action(n).model_dump(mode="json"))) | over
    return json.dumps({k: v for k, v in data.items() if v is not ...})


def _write(root: Path, lines: list[str], name: str = NAME) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return path


def _count(root: Path, where: str | None = None, stats: ScanStats | None = None) -> int:
    return count(root, where, stats=stats)


def _listing(root: Path, engine: str, **kw: Any) -> tuple[list[str], ScanStats]:
    stats = ScanStats()
    got = iter_actions(str(root), "refund-agent", *WINDOW, stats=stats, engine=engine, **kw)
    return [r.action_id for r in got], stats


EFFECT = {"system": "pay", "resource_type": "refund", "resource_id": "r", "operation": "create"}
WRONG = [
    {"status": "bogus"},
    {"action_id": 123},
    {"unit_of_work": 42},
    {"tool": ""},
    {"tool": {"name": "issue_refund"}},
    {"trace_id": ""},
    {"agent": ""},
    {"span_id": 7},
    {"idempotency_key": ["k"]},
    {"args": "x"},
    {"args": [1]},
    {"effects": "x"},
    {"effects": [{"system": "x"}]},
    {"effects": [1]},
    {"effects": [EFFECT | {"reversible": "maybe"}]},
    {"effects": [EFFECT | {"reversible": True, "details": None}]},
    {"effects": [EFFECT | {"reversible": True, "idempotency_key": 5}]},
    {"duration_ms": "slow"},
    {"duration_ms": {"ms": 1}},
    {"error": 5},
    {"release_id": 7},
    {"parent_span_id": True},
]
# accepted by the models as they coerce: must be counted and listed, not flagged
LAX = [
    {"effects": [EFFECT | {"reversible": "yes"}]},
    {"effects": [EFFECT | {"reversible": 0}]},
    {"effects": []},
    {"effects": ...},
    {"args": ...},
    {"duration_ms": "12.5"},
    {"duration_ms": 3},
    {"error": None},
]


@pytest.mark.parametrize("over", WRONG, ids=lambda o: json.dumps(o)[:40])
def test_a_wrongly_typed_field_is_invalid_in_the_count_and_the_listing(
    tmp_path: Path, over: dict[str, Any]
) -> None:
    _write(tmp_path, [_line(1), _line(2, **over), _line(3)])
    for _ in range(2):  # with the cache: built, then read
        stats = ScanStats()
        assert _count(tmp_path, stats=stats) == 2
        assert dict(stats.bad) == {"invalid": 1}
        for engine in ("duckdb", "python"):
            ids, listed = _listing(tmp_path, engine)
            assert ids == ["act-000001", "act-000003"]
            assert dict(listed.bad) == {"invalid": 1}
            assert [(e.line, e.reason) for e in listed.examples] == [(2, "invalid")]


@pytest.mark.parametrize("over", LAX, ids=lambda o: json.dumps(o, default=str)[:40])
def test_a_value_the_models_coerce_is_a_valid_action(tmp_path: Path, over: dict[str, Any]) -> None:
    _write(tmp_path, [_line(1), _line(2, **over)])
    for _ in range(2):
        stats = ScanStats()
        assert _count(tmp_path, stats=stats) == 2 and stats.bad_total == 0
        for engine in ("duckdb", "python"):
            assert _listing(tmp_path, engine)[0] == ["act-000001", "act-000002"]


def test_a_limited_listing_shows_limit_valid_rows_past_the_rows_the_models_reject(
    tmp_path: Path,
) -> None:
    # a trailing comma: DuckDB's parser takes the line, python's json (and so the models) does
    # not: the listing reads on past such a row and counts it
    def trailing(n: int) -> str:
        return _line(n)[:-1] + ", }"

    _write(tmp_path, [_line(1), trailing(2), _line(3), trailing(4), _line(5)])
    for _ in range(2):
        for engine in ("duckdb", "python"):
            ids, stats = _listing(tmp_path, engine, limit=2)
            assert ids == ["act-000001", "act-000003"], engine
            assert stats.bad["not_json"] >= 1
            ids, stats = _listing(tmp_path, engine, limit=3)
            assert ids == ["act-000001", "act-000003", "act-000005"], engine
            assert dict(stats.bad) == {"not_json": 2}


def test_args_and_effects_written_as_null_are_read_as_none_in_every_engine(
    tmp_path: Path,
) -> None:
    # Go's encoding/json writes a nil map or slice as null: such actions are valid, with no
    # arguments and no effects, and are counted and listed alike by both engines
    _write(tmp_path, [_line(1), _line(2, args=None, effects=None), _line(3, effects=None)])
    for _ in range(2):
        stats = ScanStats()
        assert _count(tmp_path, stats=stats) == 3 and stats.bad_total == 0
        for engine in ("duckdb", "python"):
            ids, listed = _listing(tmp_path, engine)
            assert ids == ["act-000001", "act-000002", "act-000003"], engine
            assert listed.bad_total == 0
    got = iter_actions(str(tmp_path), "refund-agent", *WINDOW, stats=ScanStats())
    [record] = [r for r in got if r.action_id == "act-000002"]
    assert record.args == {} and record.effects == []


@pytest.mark.parametrize("first_valid", [True, False])
def test_a_key_given_twice_keeps_its_first_value_in_every_engine(
    tmp_path: Path, first_valid: bool
) -> None:
    statuses = ('"executed"', '"bogus"') if first_valid else ('"bogus"', '"executed"')
    twice = _line(2)[:-1].replace('"status": "executed"', f'"status": {statuses[0]}')
    twice += f', "status": {statuses[1]}, "args": {{"amount": 99}}}}'
    _write(tmp_path, [_line(1), twice, _line(3)])
    for _ in range(2):
        for where in (None, "args.amount > 12"):
            stats = ScanStats()
            count = _count(tmp_path, where, stats=stats)
            for engine in ("duckdb", "python"):
                ids, listed = _listing(tmp_path, engine, where=where)
                assert len(ids) == count, (engine, where)
                assert listed.bad_total == stats.bad_total == (0 if first_valid else 1)
            # the first `args` (amount 10) is the one read, not the later 99
            assert ("act-000002" in ids) is (first_valid and where is None)


def test_a_negative_limit_is_bad_input(tmp_path: Path) -> None:
    _write(tmp_path, [_line(1)])
    with pytest.raises(BadInputError):
        _listing(tmp_path, "duckdb", limit=-1)


def test_where_paths_differing_only_in_case_are_two_paths(tmp_path: Path) -> None:
    _write(
        tmp_path,
        [
            _line(1, args={"Amount": 99, "amount": 10}, Tool="zzz", result={"ID": "a", "id": "b"}),
            _line(2, args={"amount": 99}),
        ],
    )
    for _ in range(2):  # the second time from the cache the first wrote
        assert _count(tmp_path, "args.Amount = 99") == 1
        assert _count(tmp_path, "args.amount = 99") == 1
        assert _count(tmp_path, "args.Amount = 10 or args.amount = 10") == 1
        assert _count(tmp_path, "Tool = 'zzz'") == 1
        assert _count(tmp_path, "tool = 'issue_refund' and Tool is null") == 1
        assert _count(tmp_path, "result.ID = 'a' and result.id = 'b'") == 1
        assert _count(tmp_path, "Args.amount = 99") == 0
        ids, _ = _listing(tmp_path, "duckdb", where="args.Amount = 99")
        assert ids == ["act-000001"]


def test_a_batch_a_query_is_about_to_read_is_not_collected_under_it(
    tmp_path: Path, trace_cache: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A looks its partition up (batch X, older than a minute); before A reads X, B runs a query
    # with a new --where path: B rebuilds the partition into batch Y and collects what no
    # manifest names. X must survive until A has read it.
    from agentctl.trace import cache as cache_mod

    audit = tmp_path / "audit"
    _write(audit, [_line(n) for n in range(1, 11)])
    assert _count(audit) == 10
    if trace_cache != "cache":
        return
    batches = tmp_path / "trace-cache"
    [old] = batches.rglob("batches/*.parquet")
    os.utime(old, (old.stat().st_mtime - 3600,) * 2)
    lookup = cache_mod.PartitionCache.lookup
    other: list[int] = []

    def racing_lookup(self: Any, entry: Any, files: Any) -> Any:
        found = lookup(self, entry, files)
        if not other:
            other.append(-1)
            other[0] = _count(audit, "args.amount > 20")  # B, between A's lookup and read
        return found

    monkeypatch.setattr(cache_mod.PartitionCache, "lookup", racing_lookup)
    assert _count(audit) == 10 and other == [6]
    assert old.exists()  # A held it: B left it
    monkeypatch.setattr(cache_mod.PartitionCache, "lookup", lookup)
    assert _count(audit, "args.order_id = 'o-3'") == 1  # a build, no one reading: X goes
    assert not old.exists()


def test_temporary_files_a_killed_process_left_are_collected(
    tmp_path: Path, trace_cache: str
) -> None:
    audit = tmp_path / "audit"
    _write(audit, [_line(1), _line(2)])
    assert _count(audit) == 2
    if trace_cache != "cache":
        return
    [manifest] = (tmp_path / "trace-cache").rglob("manifest.json")
    folder = manifest.parent.parent / "batches"
    hour_ago = manifest.stat().st_mtime - 3700
    left = [folder / ".0a1b.parquet.4242.tmp", manifest.parent / ".manifest.json.4242"]
    fresh = [folder / ".0a1c.parquet.4343.tmp", manifest.parent / ".manifest.json.4343"]
    for path in left + fresh:
        path.write_bytes(b"half written")
    for path in left:
        os.utime(path, (hour_ago, hour_ago))
    assert _count(audit, "args.amount > 5") == 1  # a build, then a collection
    assert [p.exists() for p in left + fresh] == [False, False, True, True]


@pytest.mark.parametrize("size_mb", [9, 20])
def test_a_line_longer_than_duckdbs_readers_take_is_listed_and_traced(
    tmp_path: Path, size_mb: int
) -> None:
    from agentctl.trace.chain import find_actions

    big = _line(2, args={"amount": 10, "blob": "x" * (size_mb << 20)})
    _write(tmp_path, [big, _line(1), _line(3), "{" + "y" * (size_mb << 20)])
    for _ in range(2):
        stats = ScanStats()
        assert _count(tmp_path, stats=stats) == 3
        assert dict(stats.bad) == {"not_json": 1}
        for engine in ("python", "duckdb"):
            ids, listed = _listing(tmp_path, engine, where="args.amount >= 10")
            assert ids == ["act-000002", "act-000003"], engine
            assert dict(listed.bad) == {"not_json": 1} and listed.lines == 4
            assert [(e.line, e.reason) for e in listed.examples] == [(4, "not_json")]
        [found] = find_actions(str(tmp_path), "act-000002")
        assert found.args["amount"] == 10


def _damaged(root: Path, how: str) -> None:
    import gzip

    _write(root, [_line(300)], name="dt=2026-11-24/actions-w2-000001.jsonl")
    path = root / "dt=2026-11-24" / "actions-w1-000001.jsonl.gz"
    body = gzip.compress("".join(_line(n) + "\n" for n in range(1, 41)).encode())
    data = {
        "cut short": body[: len(body) // 2],
        "not gzip": (_line(1) + "\n").encode(),
        "empty file": b"",
        "empty stream": gzip.compress(b""),
    }[how]
    path.write_bytes(data)


@pytest.mark.parametrize("how", ["cut short", "not gzip", "empty file", "empty stream"])
def test_a_damaged_gzip_file_is_read_as_far_as_python_reads_it(tmp_path: Path, how: str) -> None:
    _damaged(tmp_path, how)
    window = (T0, T0 + timedelta(hours=6))
    py = ScanStats()
    want = [
        r.action_id
        for r in iter_actions(str(tmp_path), "refund-agent", *window, stats=py, engine="python")
    ]
    assert (py.bad["truncated_gzip"] == 1) is (how in ("cut short", "not gzip"))
    assert "act-000300" in want
    for _ in range(2):
        stats = ScanStats()
        n = count(tmp_path, window=window, stats=stats)
        assert n == len(want) and stats.to_dict() == py.to_dict()
        got = ScanStats()
        ids = [
            r.action_id
            for r in iter_actions(
                str(tmp_path), "refund-agent", *window, stats=got, engine="duckdb"
            )
        ]
        assert ids == want and got.to_dict() == py.to_dict()


def test_bad_line_examples_are_the_first_ones_with_their_own_line_numbers(
    tmp_path: Path,
) -> None:
    # the same bad text on several lines: each example names its own line, in file order;
    # a bad line far down a big file does not push out the first ones
    lines = [_line(1), "oops", _line(3), "oops", _line(5), "oops", "[1]", "oops"]
    lines += [_line(n, action_id=f"x{n}") for n in range(6, 3000)] + ["late"]
    path = _write(tmp_path, lines)
    want = [(str(path), n) for n in (2, 4, 6, 7, 8)]
    for _ in range(2):
        stats = ScanStats()
        _count(tmp_path, stats=stats)
        assert [(e.file, e.line) for e in stats.examples] == want
        for engine in ("python", "duckdb"):
            _, listed = _listing(tmp_path, engine)
            assert [(e.file, e.line) for e in listed.examples] == want, engine


def test_a_source_path_with_glob_characters_reads_only_that_directory(tmp_path: Path) -> None:
    from agentctl.trace.chain import ActionNotFoundError, find_actions

    _write(tmp_path / "audit*x", [_line(1), _line(2)])
    _write(tmp_path / "auditYx", [_line(3), _line(4), _line(5)])
    _write(tmp_path / "audit[1]", [_line(6)])
    _write(tmp_path / "audit1", [_line(7)])
    for _ in range(2):
        assert _count(tmp_path / "audit*x") == 2
        assert _count(tmp_path / "audit[1]") == 1
        for engine in ("python", "duckdb"):
            assert _listing(tmp_path / "audit*x", engine)[0] == ["act-000001", "act-000002"]
            assert _listing(tmp_path / "audit[1]", engine)[0] == ["act-000006"]
        assert [a.action_id for a in find_actions(str(tmp_path / "audit*x"), "act-000002")] == [
            "act-000002"
        ]
        with pytest.raises(ActionNotFoundError):  # it is in auditYx only
            find_actions(str(tmp_path / "audit*x"), "act-000004")
