"""The DuckDB engine: action queries over the day-partitioned JSONL (plain or gzip).

The file list handed to DuckDB is already pruned to the day partitions the window touches
(:mod:`agentctl.trace.source`), so a one-hour query opens one day's files, not thirty. Each line is
read as text and parsed with ``TRY(line::JSON)``: a corrupt line becomes a counted ``not_json``
row instead of an error that stops the scan (DuckDB's own ``ignore_errors`` would drop it silently).
The classification mirrors :func:`agentctl.trace.scan.classify`; rows that match are validated with
the pydantic models, so what DuckDB selects and what Python accepts cannot drift apart unnoticed
(a matched row failing validation is counted as ``invalid``).

S3 locations: the pruned objects are downloaded to a temporary directory first (no httpfs
extension needed; the download is bounded by the window's partitions).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agentctl.trace import where as where_lang
from agentctl.trace.records import SUPPORTED_VERSIONS, ActionRecord
from agentctl.trace.scan import MAX_EXAMPLES, BadLine, ScanStats
from agentctl.trace.source import LocalLocation, Location, RecordFile

MEMORY_LIMIT = "512MB"
MAX_LINE = 8 * 1024 * 1024  # longer lines: the python engine reads them
# Positions in the list json_extract_string returns (one JSON parse for all fields).
FIELDS = (
    "record_type",
    "agent",
    "ts",
    "tool",
    "action_id",
    "idempotency_key",
    "unit_of_work",
    "status",
    "trace_id",
    "span_id",
)
_F = {name: i + 1 for i, name in enumerate(FIELDS)}
REQUIRED_ACTION = ("agent", "tool", "action_id", "idempotency_key", "unit_of_work", "status")
PLAIN_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{4,200}$")


def connect() -> Any:
    import duckdb

    con = duckdb.connect(config={"memory_limit": MEMORY_LIMIT})
    con.execute("SET TimeZone = 'UTC'")
    return con


def v(name: str) -> str:
    return f"v[{_F[name]}]"


def _classified(prefilter: str = "") -> str:
    """SQL of the relation ``c(file, line, j, v, ts, bad)`` over the files in ``$files``."""
    versions = ", ".join(f"'{n}'" for n in sorted(SUPPORTED_VERSIONS))
    paths = "[" + ", ".join(f"'$.{f}'" for f in FIELDS) + "]"
    missing = " OR ".join(f"{v(f)} IS NULL" for f in REQUIRED_ACTION)
    return f"""
    WITH raw AS (
        SELECT filename AS file, line, TRY(line::JSON) AS j
        FROM read_csv($files, columns = {{'line': 'VARCHAR'}}, header = false,
                      auto_detect = false, delim = '\x01', quote = '', escape = '',
                      filename = true, max_line_size = {MAX_LINE})
        WHERE line IS NOT NULL AND trim(line) <> '' {prefilter}
    ), f AS (
        SELECT file, line, j, json_extract_string(j, {paths}) AS v,
               json_type(j) AS jt, json_type(j, '$.schema_version') AS vt,
               json_extract_string(j, '$.schema_version') AS ver
        FROM raw
    ), c AS (
        SELECT file, line, j, v, TRY_CAST({v("ts")} AS TIMESTAMPTZ) AS ts,
            CASE
                WHEN j IS NULL THEN 'not_json'
                WHEN jt <> 'OBJECT' THEN 'not_object'
                WHEN vt IS NULL OR vt NOT IN ('BIGINT', 'UBIGINT') OR ver NOT IN ({versions})
                    THEN 'unknown_version'
                WHEN {v("record_type")} IS NULL OR {v("record_type")} NOT IN
                    ('action', 'model_call', 'retrieval', 'input') THEN 'unknown_record_type'
                WHEN TRY_CAST({v("ts")} AS TIMESTAMPTZ) IS NULL
                     OR {v("trace_id")} IS NULL OR {v("span_id")} IS NULL THEN 'invalid'
                WHEN {v("record_type")} = 'action' AND ({missing}) THEN 'invalid'
                ELSE NULL
            END AS bad
        FROM f
    )"""


@dataclass(frozen=True)
class ActionQuery:
    """The SQL of an action query and its parameters (``$files``, ``$agent``, ...)."""

    match: str
    params: dict[str, Any]


def action_query(
    agent: str, since: datetime, until: datetime, where: str | None, tool: str | None
) -> ActionQuery:
    conds = [
        f"{v('record_type')} = 'action'",
        f"{v('agent')} = $agent",
        "ts >= $since",
        "ts < $until",
    ]
    params: dict[str, Any] = {"agent": agent, "since": since, "until": until}
    if tool:
        conds.append(f"{v('tool')} = $tool")
        params["tool"] = tool
    if where:
        conds.append(where_lang.to_sql(where_lang.parse(where), where_lang.DuckDbDialect("j")))
    return ActionQuery("bad IS NULL AND " + " AND ".join(conds), params)


class _Files:
    """Local JSONL paths DuckDB can open for the record files: local JSONL as they are; S3
    objects downloaded and OTLP JSON normalised into a temporary directory."""

    def __init__(self, location: Location, files: list[RecordFile], stats: ScanStats) -> None:
        self.location = location
        self.files = files
        self.stats = stats
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.display: dict[str, str] = {}

    def _tmpdir(self) -> Path:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="agentctl-trace-")
        return Path(self._tmp.name)

    def __enter__(self) -> list[str]:
        paths = []
        for i, file in enumerate(self.files):
            if file.kind == "otlp":
                from agentctl.trace.otlp import normalise
                from agentctl.trace.scan import open_text

                with self.location.open(file) as body, open_text(file.name, body) as text:
                    records = normalise(file.name, text.read(), self.stats)
                path = self._tmpdir() / f"{i:06d}.jsonl"
                path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
            elif isinstance(self.location, LocalLocation):
                path = Path(file.name)
            else:
                suffix = ".jsonl.gz" if file.name.endswith(".gz") else ".jsonl"
                path = self._tmpdir() / f"{i:06d}{suffix}"
                with self.location.open(file) as body, open(path, "wb") as out:
                    shutil.copyfileobj(body, out, 1 << 20)
            paths.append(str(path))
            self.display[str(path)] = file.name
        return paths

    def __exit__(self, *exc: object) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


def _count_bad(
    con: Any,
    sql: str,
    match: str,
    params: dict[str, Any],
    display: dict[str, str],
    stats: ScanStats,
) -> int:
    """Fill ``stats`` (lines, bad by reason, a few examples); return how many rows match."""
    rows = con.execute(
        f"{sql} SELECT bad, count(*), count(*) FILTER (WHERE {match}) FROM c GROUP BY bad",
        params,
    ).fetchall()
    matched = 0
    for bad, count, hits in rows:
        stats.lines += int(count)
        if bad is None:
            matched = int(hits)
        else:
            stats.bad[str(bad)] += int(count)
    room = MAX_EXAMPLES - len(stats.examples)
    if stats.bad_total and room > 0:
        examples = con.execute(
            f"{sql} SELECT bad, file, line FROM c WHERE bad IS NOT NULL LIMIT {room}",
            {"files": params["files"]},
        ).fetchall()
        for bad, file, line in examples:
            number = _line_number(file, line)
            stats.examples.append(
                BadLine(display.get(file, file), number, str(bad), (line or "")[:80])
            )
    return matched


def _line_number(path: str, line: str) -> int:
    """The 1-based line number of ``line`` in ``path`` (only called for a few bad lines)."""
    from agentctl.trace.scan import open_text

    with open(path, "rb") as raw, open_text(path, raw) as text:
        for n, candidate in enumerate(text, start=1):
            if candidate.rstrip("\r\n") == line:
                return n
    return 0


def count_actions(
    location: Location,
    files: list[RecordFile],
    agent: str,
    since: datetime,
    until: datetime,
    where: str | None,
    tool: str | None,
    *,
    stats: ScanStats,
) -> int:
    """How many actions match (one scan; bad lines counted in ``stats``)."""
    if not files:
        return 0
    query = action_query(agent, since, until, where, tool)
    con = connect()
    try:
        with _Files(location, files, stats) as paths:
            stats.files += len(paths)
            params = {"files": paths, **query.params}
            display = dict(zip(paths, (f.name for f in files), strict=True))
            return _count_bad(con, _classified(), query.match, params, display, stats)
    finally:
        con.close()


def iter_actions(
    location: Location,
    files: list[RecordFile],
    agent: str,
    since: datetime,
    until: datetime,
    where: str | None,
    tool: str | None,
    *,
    stats: ScanStats,
) -> Iterator[ActionRecord]:
    """Matching action records in (ts, action_id) order; bad lines counted in ``stats``."""
    if not files:
        return
    query = action_query(agent, since, until, where, tool)
    con = connect()
    try:
        with _Files(location, files, stats) as paths:
            stats.files += len(paths)
            sql = _classified()
            params = {"files": paths, **query.params}
            display = dict(zip(paths, (f.name for f in files), strict=True))
            _count_bad(con, sql, query.match, params, display, stats)
            cursor = con.execute(
                f"{sql} SELECT file, line FROM c WHERE {query.match} ORDER BY ts, {v('action_id')}",
                params,
            )
            while batch := cursor.fetchmany(2048):
                for file, line in batch:
                    record = _validate(display, file, line, stats)
                    if record is not None:
                        yield record
    finally:
        con.close()


def _validate(
    display: dict[str, str], file: str, line: str, stats: ScanStats
) -> ActionRecord | None:
    try:
        return ActionRecord.model_validate(json.loads(line))
    except (ValidationError, ValueError) as exc:
        detail = str(exc).splitlines()[0]
        stats.add_bad(display.get(file, file), _line_number(file, line), "invalid", detail)
        return None


def find_lines(
    location: Location,
    files: list[RecordFile],
    predicate_sql: str,
    params: dict[str, Any],
    *,
    needle: str | None,
    stats: ScanStats,
) -> list[str]:
    """Raw lines of the valid records matching ``predicate_sql`` (over ``v``, ``j`` and ``ts``),
    in time order. ``needle``: a substring every wanted line contains (a cheap pre-filter)."""
    if not files:
        return []
    prefilter = "AND contains(line, $needle)" if needle else ""
    if needle:
        params = {**params, "needle": needle}
    con = connect()
    try:
        with _Files(location, files, stats) as paths:
            stats.files += len(paths)
            rows = con.execute(
                f"{_classified(prefilter)} SELECT line FROM c WHERE bad IS NULL AND "
                f"({predicate_sql}) ORDER BY ts",
                {"files": paths, **params},
            ).fetchall()
    finally:
        con.close()
    return [str(r[0]) for r in rows]


def needle_for(ident: str) -> str | None:
    """A substring every line holding ``ident`` as a JSON string contains (None: no shortcut)."""
    return f'"{ident}"' if PLAIN_ID.match(ident) else None
