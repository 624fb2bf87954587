"""iter_actions: the reader rollback and `actions` stand on."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from agentctl.errors import BadInputError
from agentctl.trace.query import iter_actions
from agentctl.trace.records import ActionRecord, ActionStatus
from agentctl.trace.scan import ScanStats
from tests.trace.helpers import T0, action, count, write

ENGINES = ["python", "duckdb"]


@pytest.mark.parametrize("engine", ENGINES)
def test_window_tool_and_where_select_the_right_actions(tmp_path: Path, engine: str) -> None:
    records = [action(n) for n in range(10)]
    records.append(action(100, tool="send_email", args={"to": "a@example.com"}))
    records.append(action(101, agent="ticket-triager"))
    write(tmp_path, records)

    got = list(
        iter_actions(
            str(tmp_path),
            "refund-agent",
            T0,
            T0 + timedelta(minutes=8),
            where="args.amount > 15",
            tool="issue_refund",
            engine=engine,
        )
    )
    # minutes 0..7 are in the window; amount = 5n > 15 keeps n = 4..7.
    assert [r.action_id for r in got] == ["act-000004", "act-000005", "act-000006", "act-000007"]
    assert all(isinstance(r, ActionRecord) for r in got)
    assert got[0].effects[0].resource_id == "re_4"
    assert got[0].effects[0].reversible is True
    assert got[0].status is ActionStatus.EXECUTED


@pytest.mark.parametrize("engine", ENGINES)
def test_bad_lines_are_counted_and_the_scan_goes_on(tmp_path: Path, engine: str) -> None:
    good = json.dumps(action(1).model_dump(mode="json"))
    future = json.loads(good) | {"schema_version": 99, "action_id": "x"}
    missing = {k: v for k, v in json.loads(good).items() if k != "idempotency_key"}
    lines = [good, "{not json", json.dumps(future), json.dumps(missing), "[1,2]"]
    (tmp_path / "dt=2026-11-24").mkdir()
    (tmp_path / "dt=2026-11-24" / "actions-w-1.jsonl").write_text("\n".join(lines) + "\n")

    stats = ScanStats()
    got = list(
        iter_actions(
            str(tmp_path), "refund-agent", T0, T0 + timedelta(hours=1), stats=stats, engine=engine
        )
    )
    assert [r.action_id for r in got] == ["act-000001"]
    assert dict(stats.bad) == {"not_json": 1, "unknown_version": 1, "invalid": 1, "not_object": 1}
    assert stats.lines == 5
    assert {e.line for e in stats.examples} == {2, 3, 4, 5}


@pytest.mark.parametrize("engine", ENGINES)
def test_gzip_files_and_other_days_are_read(tmp_path: Path, engine: str) -> None:
    write(tmp_path, [action(1), action(60 * 24 + 1)], name="actions-w1-000002.jsonl.gz")
    got = list(
        iter_actions(str(tmp_path), "refund-agent", T0, T0 + timedelta(days=2), engine=engine)
    )
    assert [r.action_id for r in got] == ["act-000001", "act-001441"]


def test_bad_where_and_bad_window_fail_before_reading(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="where"):
        list(iter_actions(str(tmp_path), "a", T0, T0 + timedelta(hours=1), where="args.x >"))
    with pytest.raises(BadInputError, match="until"):
        list(iter_actions(str(tmp_path), "a", T0, T0 - timedelta(hours=1)))


def test_missing_location_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="does not exist"):
        list(iter_actions(str(tmp_path / "nope"), "a", T0, T0 + timedelta(hours=1)))


def test_cache_is_rebuilt_when_a_writer_appends_and_keeps_reporting_bad_lines(
    tmp_path: Path, trace_cache: str
) -> None:
    [path] = write(tmp_path / "audit", [action(1)])
    with open(path, "a") as f:
        f.write("{corrupt\n")
    src = str(tmp_path / "audit")
    window = (T0, T0 + timedelta(hours=1))
    for _ in range(2):  # the second query reads the cache (when on): same answer, same report
        stats = ScanStats()
        assert [r.action_id for r in iter_actions(src, "refund-agent", *window, stats=stats)] == [
            "act-000001"
        ]
        assert dict(stats.bad) == {"not_json": 1}
        assert [(e.file, e.line) for e in stats.examples] == [(str(path), 2)]
    with open(path, "a") as f:
        f.write(json.dumps(action(2).model_dump(mode="json")) + "\n")
    got = [r.action_id for r in iter_actions(src, "refund-agent", *window)]
    assert got == ["act-000001", "act-000002"]
    manifests = list((tmp_path / "trace-cache").rglob("manifest.json"))
    assert len(manifests) == (1 if trace_cache == "cache" else 0)
    for manifest in manifests:  # the rebuilt partition names the batch holding both actions
        doc = json.loads(manifest.read_text())
        assert (manifest.parent.parent / "batches" / doc["batch"]).exists()
        assert doc["stats"]["lines"] == 3 and doc["stats"]["bad_by_reason"] == {"not_json": 1}


def test_a_file_replaced_by_one_of_the_same_size_and_mtime_is_read_again(
    tmp_path: Path, trace_cache: str
) -> None:
    # `cp -p` / `rsync -t` of a corrected file: same size, same mtime, other content
    [path] = write(tmp_path / "audit", [action(1, tool="issue_refund")])
    src, window = str(tmp_path / "audit"), (T0, T0 + timedelta(hours=1))
    assert _count(src, window, "issue_refund") == 1  # cached, when the cache is on
    before = path.stat()
    fixed = path.read_text().replace('"issue_refund"', '"refund_issue"')
    replacement = path.with_name("incoming.tmp")
    replacement.write_text(fixed)
    os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))
    replacement.replace(path)
    assert path.stat().st_size == before.st_size
    assert path.stat().st_mtime_ns == before.st_mtime_ns
    assert [r.tool for r in iter_actions(src, "refund-agent", *window)] == ["refund_issue"]
    assert _count(src, window, "issue_refund") == 0  # a count reads only the cached columns
    assert _count(src, window, "refund_issue") == 1


def _count(src: str, window: tuple[datetime, datetime], tool: str) -> int:
    return count(src, tool=tool, window=window)


def test_an_unusable_cache_directory_falls_back_to_reading_jsonl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("AGENTCTL_TRACE_CACHE", str(blocker / "cache"))
    [path] = write(tmp_path / "audit", [action(1), action(2)])
    with open(path, "a") as f:
        f.write("{corrupt\n")
    stats = ScanStats()
    got = list(
        iter_actions(
            str(tmp_path / "audit"),
            "refund-agent",
            T0,
            T0 + timedelta(hours=1),
            stats=stats,
            engine="duckdb",
        )
    )
    assert [r.action_id for r in got] == ["act-000001", "act-000002"]
    assert dict(stats.bad) == {"not_json": 1} and stats.lines == 3


def test_a_partition_with_only_blank_lines_is_cached_as_empty(tmp_path: Path) -> None:
    write(tmp_path, [action(60 * 24)])  # one action on the 25th
    (tmp_path / "dt=2026-11-24").mkdir()
    (tmp_path / "dt=2026-11-24" / "actions-w-000001.jsonl").write_text("\n\n")
    for _ in range(2):
        stats = ScanStats()
        got = list(
            iter_actions(str(tmp_path), "refund-agent", T0, T0 + timedelta(days=2), stats=stats)
        )
        assert [r.action_id for r in got] == ["act-001440"]
        assert stats.bad_total == 0 and stats.files == 2


@pytest.mark.parametrize("engine", ENGINES)
def test_agent_and_tool_names_match_however_they_are_written(tmp_path: Path, engine: str) -> None:
    # The scans and the cache keep agent and tool as JSON text; a plain name is matched on its
    # JSON text, any other on its decoded value. A writer may escape a plain name (\u002d is
    # "-"), and names may hold quotes or non-ASCII letters: all must match like the value.
    line = json.dumps(action(1).model_dump(mode="json"))
    escaped = line.replace('"refund-agent"', '"refund\\u002dagent"').replace(
        '"issue_refund"', '"issue\\u005frefund"'
    )
    assert escaped != line
    odd = [
        action(2, agent='réfund "agent"', tool="issue refund/é"),
        action(3, agent='réfund "agent"', tool="issue_refund"),
        action(4, tool="issue refund/é"),
        action(5, tool="issue_refund\n"),  # not plain: a regex `$` would let it through
    ]
    write(tmp_path, [escaped, *odd])
    window = (T0, T0 + timedelta(hours=1))

    def ids(agent: str, tool: str | None) -> list[str]:
        got = iter_actions(str(tmp_path), agent, *window, tool=tool, engine=engine)
        return [r.action_id for r in got]

    for _ in range(2):  # the second time from the cache (when on)
        assert ids("refund-agent", "issue_refund") == ["act-000001"]
        assert ids("refund-agent", None) == ["act-000001", "act-000004", "act-000005"]
        assert ids("refund-agent", "issue_refund\n") == ["act-000005"]
        assert ids("refund-agent", "issue refund/é") == ["act-000004"]
        assert ids('réfund "agent"', None) == ["act-000002", "act-000003"]
        assert ids('réfund "agent"', "issue refund/é") == ["act-000002"]
        assert ids("refund\\u002dagent", None) == []  # the name is the value, not its text
        if engine == "duckdb":
            assert count(tmp_path, tool="issue_refund", window=window) == 1


def test_a_cache_of_an_older_version_is_rebuilt_not_misread(
    tmp_path: Path, trace_cache: str
) -> None:
    # version 4 kept record_type as JSON text, version 3 decoded (with agent and tool): read
    # as version 5's numbers, nothing would match. Each is made from a fresh cache: same rows.
    import duckdb

    write(tmp_path / "audit", [action(1), action(2)])
    src, window = str(tmp_path / "audit"), (T0, T0 + timedelta(hours=1))
    assert _count(src, window, "issue_refund") == 2
    manifests = list((tmp_path / "trace-cache").rglob("manifest.json"))
    assert len(manifests) == (1 if trace_cache == "cache" else 0)
    as_text = "CASE record_type WHEN 1 THEN '\"action\"' END AS record_type"
    decoded = "'action' AS record_type, " + ", ".join(
        f"json_extract_string({c}, '$') AS {c}" for c in ("agent", "tool")
    )
    for version, replace in ((4, as_text), (3, decoded)):
        for manifest in manifests:
            doc = json.loads(manifest.read_text())
            assert doc["version"] == 5
            batch = manifest.parent.parent / "batches" / doc["batch"]
            old = batch.with_name(f"v{version}.parquet")
            duckdb.sql(
                f"COPY (SELECT * REPLACE ({replace}) FROM read_parquet('{batch}')) TO '{old}'"
            )
            old.replace(batch)
            manifest.write_text(json.dumps(doc | {"version": version}))
        assert _count(src, window, "issue_refund") == 2
        for manifest in manifests:
            assert json.loads(manifest.read_text())["version"] == 5


@pytest.mark.parametrize("installed", ["1.4.1", None, "no version", "2.0.1rc1", "2.0.1.dev5"])
def test_without_a_recent_duckdb_auto_reads_with_python_and_duckdb_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, installed: str | None
) -> None:
    # older DuckDBs misread some input (old-Mac line ends, a half-written last line)
    import sys

    import duckdb

    from agentctl.trace.service import Traces

    if installed is None:
        monkeypatch.setitem(sys.modules, "duckdb", None)  # `import duckdb` raises ImportError
    elif installed == "no version":  # a directory an uninstall left behind imports like this
        monkeypatch.delattr(duckdb, "__version__")
    else:
        monkeypatch.setattr(duckdb, "__version__", installed)
    write(tmp_path, [action(1), action(2)])
    reason = {
        None: "DuckDB is not installed",
        "no version": "the duckdb module found has no version",
        "1.4.1": "DuckDB 1.4.1 is installed; the engine needs 2.0.1 or later",
        # pre-releases of the first release that reads these files right come before it
        "2.0.1rc1": "DuckDB 2.0.1rc1 is installed; the engine needs 2.0.1 or later",
        "2.0.1.dev5": "DuckDB 2.0.1.dev5 is installed; the engine needs 2.0.1 or later",
    }[installed]
    # the second window holds no file: --engine duckdb must not depend on that
    for window, found in (((T0, T0 + timedelta(hours=1)), 2), ((T0 - timedelta(days=9), T0), 0)):
        result = Traces().actions("refund-agent", *window, source=str(tmp_path), count_only=True)
        assert result.engine == "python" and result.count == found
        for count_only in (True, False):
            with pytest.raises(BadInputError) as err:
                Traces().actions(
                    "refund-agent",
                    *window,
                    source=str(tmp_path),
                    count_only=count_only,
                    engine="duckdb",
                )
            assert reason in str(err.value) and "--engine python" in (err.value.hint or "")
        with pytest.raises(BadInputError, match=reason):
            Traces().trace("act-000001", source=str(tmp_path), engine="duckdb")


@pytest.mark.parametrize(
    ("installed", "usable"),
    [
        ("2.0.1", True),
        ("2.0.1.post1", True),
        ("2.0.1+local", True),
        ("2.0.1.1", True),
        ("2.0.1-1", True),
        ("v2.0.1", True),
        ("2.0.2.dev1", True),
        ("2.1", True),
        ("10.0.0", True),
        ("2.0.0", False),
        ("2.0.1rc1", False),
        ("2.0.1-rc.1", False),
        ("2.0.1a1", False),
        ("2.0.1beta", False),
        ("2.0.1r1", True),
        ("2.0.1.dev5", False),
        ("1.99.99", False),
        ("unknown", False),
    ],
)
def test_which_duckdb_versions_the_engine_reads_with(
    monkeypatch: pytest.MonkeyPatch, installed: str, usable: bool
) -> None:
    import duckdb

    from agentctl.trace.query import duckdb_usable

    monkeypatch.setattr(duckdb, "__version__", installed)
    assert duckdb_usable("any") is usable
