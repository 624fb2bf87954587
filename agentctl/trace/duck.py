"""The DuckDB engine: action queries over the day-partitioned JSONL (plain or gzip).

The file list handed to DuckDB is already pruned to the day partitions the window touches
(:mod:`agentctl.trace.source`), so a one-hour query opens one day's files, not thirty. Each line is
read as text and parsed once with ``TRY(json_extract(line, [paths]))``: a corrupt line becomes a
counted ``not_json`` row instead of an error that stops the scan (DuckDB's own ``ignore_errors``
would drop it silently). With the partition cache (:mod:`agentctl.trace.cache`, on by default) a
day is parsed once into Parquet with one column per field, and later queries read the columns.
The classification mirrors :func:`agentctl.trace.scan.classify`; rows that match are validated with
the pydantic models, so what DuckDB selects and what Python accepts cannot drift apart unnoticed
(a matched row failing validation is counted as ``invalid``).

S3 locations: the pruned objects are downloaded to a temporary directory first (no httpfs
extension needed; the download is bounded by the window's partitions).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agentctl.trace import where as where_lang
from agentctl.trace.cache import Entry, PartitionCache, default_root
from agentctl.trace.records import SUPPORTED_VERSIONS, ActionRecord
from agentctl.trace.scan import MAX_EXAMPLES, BadLine, ScanStats
from agentctl.trace.source import LocalLocation, Location, RecordFile

MEMORY_LIMIT = "512MB"
MAX_LINE = 8 * 1024 * 1024  # longer lines: the python engine reads them
# Fields pulled out of every line by ONE ``json_extract(line, [paths])`` call: each line is
# parsed once (parsing dominates the cost); the list holds JSON fragments, ``v[i]``.
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
    "schema_version",
)
_F = {name: i + 1 for i, name in enumerate(FIELDS)}
STRING_COLUMNS = (
    "record_type",
    "agent",
    "tool",
    "action_id",
    "idempotency_key",
    "unit_of_work",
    "status",
    "trace_id",
    "span_id",
)
JSON_COLUMNS = ("args", "result")  # kept as JSON text: --where on args.* parses only args
REQUIRED_ACTION = ("agent", "tool", "action_id", "idempotency_key", "unit_of_work", "status")
# Values whose JSON text is just the value in double quotes, in any writer's output (and in
# DuckDB's re-serialised fragments): those compare as fragments, without a second parse.
_PLAIN = re.compile(r"^[A-Za-z0-9 _.:@/+=,;#-]*$")


def connect() -> Any:
    import duckdb

    con = duckdb.connect(config={"memory_limit": MEMORY_LIMIT})
    con.execute("SET TimeZone = 'UTC'")
    return con


def v(name: str) -> str:
    """The JSON fragment of a base field (``'"action"'``, ``'1'``), NULL when absent."""
    return f"v[{_F[name]}]"


def text(name: str) -> str:
    """The string value of a base field."""
    return f"json_extract_string({v(name)}, '$')"


def _paths(node: where_lang.Node | None) -> list[str]:
    out: list[str] = []

    def walk(n: where_lang.Node) -> None:
        if isinstance(n, where_lang.BoolOp):
            walk(n.left)
            walk(n.right)
        elif isinstance(n, where_lang.Not):
            walk(n.inner)
        else:
            path = "$." + ".".join(n.path)
            if path not in out:
                out.append(path)

    if node is not None:
        walk(node)
    return out


class _FragmentDialect(where_lang.SqlDialect):
    """--where over JSON fragments: each path has an SQL expression giving its JSON text."""

    def __init__(self, fragments: dict[str, str]) -> None:
        super().__init__("v")
        self.fragments = fragments

    def frag(self, path: str) -> str:
        return self.fragments[path]

    def json_type(self, path: str) -> str:
        return f"json_type({self.frag(path)})"

    def text(self, path: str) -> str:
        return f"json_extract_string({self.frag(path)}, '$')"

    def num(self, path: str) -> str:
        return f"TRY_CAST({self.frag(path)} AS DOUBLE)"

    def num_types(self) -> str:
        return "'BIGINT', 'UBIGINT', 'DOUBLE'"


class Shape:
    """How a relation ``c`` exposes the record fields: raw fragments or cached columns."""

    def eq(self, name: str, param: str, value: str, params: dict[str, Any]) -> str:
        raise NotImplementedError

    def col(self, name: str) -> str:
        raise NotImplementedError

    def where(self, node: where_lang.Node) -> str:
        raise NotImplementedError


class DirectShape(Shape):
    """``v`` = fragments of FIELDS, then of ``extra`` paths (one parse per line)."""

    def __init__(self, extra: list[str]) -> None:
        self.extra = extra

    def eq(self, name: str, param: str, value: str, params: dict[str, Any]) -> str:
        if _PLAIN.match(value):
            params[param] = json.dumps(value)
            return f"{v(name)} = ${param}"
        params[param] = value
        return f"{text(name)} = ${param}"

    def col(self, name: str) -> str:
        return v(name)

    def where(self, node: where_lang.Node) -> str:
        frags = {p: f"v[{len(FIELDS) + i + 1}]" for i, p in enumerate(self.extra)}
        return where_lang.to_sql(node, _FragmentDialect(frags))


class CachedShape(Shape):
    """One column per string field, ``args``/``result`` as JSON text, ``line`` for the rest."""

    def eq(self, name: str, param: str, value: str, params: dict[str, Any]) -> str:
        params[param] = value
        return f"{name} = ${param}"

    def col(self, name: str) -> str:
        return name

    def where(self, node: where_lang.Node) -> str:
        return self.split(node)[1]

    def split(self, node: where_lang.Node) -> tuple[list[str], str]:
        """Projections that extract every --where path with one parse per JSON column (each
        named ``w_<column>``), and the condition over them. Used as
        ``SELECT *, <projections> FROM c WHERE <base>`` so only rows passing the cheap
        column filters are parsed."""
        groups: dict[str, list[str]] = {}
        frags: dict[str, str] = {}
        for path in _paths(node):
            parts = path[2:].split(".")
            if len(parts) == 1 and parts[0] in STRING_COLUMNS:
                frags[path] = f"to_json({parts[0]})"
                continue
            column = parts[0] if parts[0] in JSON_COLUMNS and len(parts) > 1 else "line"
            rest = "$" + "".join(f".{p}" for p in parts[1:]) if column != "line" else path
            paths = groups.setdefault(column, [])
            paths.append(rest)
            frags[path] = f"w_{column}[{len(paths)}]"
        projections = [
            f"json_extract({column}, [{', '.join(repr(p) for p in paths)}]) AS w_{column}"
            for column, paths in groups.items()
        ]
        return projections, where_lang.to_sql(node, _FragmentDialect(frags))


def _classified(extra: list[str] | None = None, prefilter: bool = False) -> str:
    """SQL of the relation ``c(file, line, v, ts, bad)`` over the files in ``$files``;
    ``v`` holds the fragments of FIELDS and then of ``extra`` JSON paths."""
    versions = ", ".join(f"'{n}'" for n in sorted(SUPPORTED_VERSIONS))
    paths = (
        "[" + ", ".join(f"'$.{f}'" for f in FIELDS) + "".join(f", '{p}'" for p in extra or []) + "]"
    )
    missing = " OR ".join(f"COALESCE({v(f)}, 'null') = 'null'" for f in REQUIRED_ACTION)
    types = ", ".join(f"'\"{t}\"'" for t in ("action", "model_call", "retrieval", "input"))
    return f"""
    WITH raw AS (
        SELECT filename AS file, line, TRY(json_extract(line, {paths})) AS v
        FROM read_csv($files, columns = {{'line': 'VARCHAR'}}, header = false,
                      auto_detect = false, delim = '\x01', quote = '', escape = '',
                      filename = true, max_line_size = {MAX_LINE})
        WHERE line IS NOT NULL AND (starts_with(line, '{{') OR trim(line) <> '')
              {"AND contains(line, $needle)" if prefilter else ""}
    ), c AS (
        SELECT file, line, v, TRY_CAST({text("ts")} AS TIMESTAMPTZ) AS ts,
            CASE
                WHEN v IS NULL THEN 'not_json'
                WHEN NOT (starts_with(line, '{{') OR starts_with(ltrim(line), '{{'))
                    THEN 'not_object'
                WHEN {v("schema_version")} IS NULL OR {v("schema_version")} NOT IN ({versions})
                    THEN 'unknown_version'
                WHEN {v("record_type")} IS NULL OR {v("record_type")} NOT IN ({types})
                    THEN 'unknown_record_type'
                WHEN ts IS NULL OR COALESCE({v("trace_id")}, 'null') = 'null'
                     OR COALESCE({v("span_id")}, 'null') = 'null'
                     OR COALESCE({v("agent")}, 'null') = 'null' THEN 'invalid'
                WHEN {v("record_type")} = '"action"' AND ({missing}) THEN 'invalid'
                ELSE NULL
            END AS bad
        FROM raw
    )"""


def action_conds(
    shape: Shape,
    agent: str,
    since: datetime,
    until: datetime,
    node: where_lang.Node | None,
    tool: str | None,
    params: dict[str, Any],
) -> str:
    """A ``FROM`` clause (``m``) holding exactly the matching action rows."""
    params.update(since=since, until=until)
    conds = [
        "bad IS NULL",
        shape.eq("record_type", "rtype", "action", params),
        shape.eq("agent", "agent", agent, params),
        "ts >= $since",
        "ts < $until",
    ]
    if tool:
        conds.append(shape.eq("tool", "tool", tool, params))
    base = " AND ".join(conds)
    if node is None:
        return f"(SELECT * FROM c WHERE {base}) AS m"
    if isinstance(shape, CachedShape):
        projections, cond = shape.split(node)
        extra = "".join(f", {p}" for p in projections)
        return f"(SELECT *{extra} FROM c WHERE {base}) AS m WHERE {cond}"
    return f"(SELECT * FROM c WHERE {base} AND {shape.where(node)}) AS m"


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


def _classify_stats(
    con: Any,
    relation: str,
    params: dict[str, Any],
    display: dict[str, str],
    stats: ScanStats,
    local: dict[str, str] | None = None,
) -> None:
    """Lines and bad lines (by reason, first locations) of ``relation`` (a parquet file or the
    direct CTE) into ``stats``."""
    rows = con.execute(f"{relation} SELECT bad, count(*) FROM c GROUP BY bad", params).fetchall()
    _add_counts(con, relation, params, display, stats, rows, local)


def _add_counts(
    con: Any,
    relation: str,
    params: dict[str, Any],
    display: dict[str, str],
    stats: ScanStats,
    rows: list[tuple[Any, ...]],
    local: dict[str, str] | None = None,
) -> None:
    """Add ``(bad, count, ...)`` rows to ``stats``; fetch the first bad lines as examples."""
    for bad, count, *_ in rows:
        stats.lines += int(count)
        if bad is not None:
            stats.bad[str(bad)] += int(count)
    room = MAX_EXAMPLES - len(stats.examples)
    if stats.bad_total and room > 0:
        examples = con.execute(
            f"{relation} SELECT bad, file, line FROM c WHERE bad IS NOT NULL "
            f"ORDER BY file LIMIT {room}",
            {"files": params["files"]},
        ).fetchall()
        for bad, file, line in examples:
            path = (local or {}).get(file, file)
            number = _line_number(path, line) if os.path.exists(path) else 0
            stats.examples.append(
                BadLine(display.get(file, file), number, str(bad), (line or "")[:80])
            )


def _line_number(path: str, line: str) -> int:
    """The 1-based line number of ``line`` in ``path`` (only called for a few bad lines)."""
    from agentctl.trace.scan import open_text

    with open(path, "rb") as raw, open_text(path, raw) as text:
        for n, candidate in enumerate(text, start=1):
            if candidate.rstrip("\r\n") == line:
                return n
    return 0


class _Scan:
    """The relation ``c`` over record files, with ``stats`` filled, and its :class:`Shape`.

    With a cache (the default), each day partition is parsed once into Parquet and read from
    there while its files are unchanged; without, the JSONL is classified directly.
    """

    def __init__(
        self,
        con: Any,
        location: Location,
        files: list[RecordFile],
        stats: ScanStats,
        *,
        kinds: str,
        node: where_lang.Node | None = None,
        cache: PartitionCache | bool | None = True,
        needle: str | None = None,
        defer_stats: bool = False,
    ) -> None:
        self.con = con
        self.needle = needle
        self.defer_stats = defer_stats  # direct mode: the caller counts lines in its own pass
        self.display: dict[str, str] = {}
        self.location = location
        self.files = files
        self.stats = stats
        self.kinds = kinds
        self.node = node
        if cache is True:
            root = default_root()
            cache = PartitionCache(root) if root is not None else None
        self.cache: PartitionCache | None = cache or None
        self._direct: _Files | None = None

    def __enter__(self) -> tuple[str, dict[str, Any], Shape]:
        if self.cache is not None:
            import duckdb

            try:
                return self._cached(self.cache)
            except (OSError, duckdb.IOException):
                self.cache = None  # unwritable cache directory: read directly
        self._direct = _Files(self.location, self.files, self.stats)
        paths = self._direct.__enter__()
        self.stats.files += len(paths)
        display = dict(zip(paths, (f.name for f in self.files), strict=True))
        params: dict[str, Any] = {"files": paths}
        extra = _paths(self.node)
        if self.needle is not None:
            # A lookup without the cache parses only the lines holding the id; the others are
            # neither parsed nor classified (the scan statistics say so: lines = 0).
            params["needle"] = self.needle
            return _classified(extra=extra, prefilter=True), params, DirectShape(extra)
        relation = _classified(extra=extra)
        self.display = display
        if not self.defer_stats:
            _classify_stats(self.con, relation, params, display, self.stats)
        return relation, params, DirectShape(extra)

    def __exit__(self, *exc: object) -> None:
        if self._direct is not None:
            self._direct.__exit__(*exc)

    def _cached(self, cache: PartitionCache) -> tuple[str, dict[str, Any], Shape]:
        by_part: dict[str, list[RecordFile]] = {}
        for f in self.files:
            by_part.setdefault(f.partition, []).append(f)
        parquets = []
        total = ScanStats()  # merged only when every partition is available
        for part, files in sorted(by_part.items()):
            entry = cache.entry(self.location.url, part, self.kinds)
            part_stats = cache.lookup(entry, files)
            if part_stats is None:
                part_stats = self._build(cache, entry, files)
            total.merge(part_stats)
            parquets.append(str(entry.parquet))
        self.stats.merge(total)
        return "WITH c AS (SELECT * FROM read_parquet($files))", {"files": parquets}, CachedShape()

    def _build(self, cache: PartitionCache, entry: Entry, files: list[RecordFile]) -> ScanStats:
        stats = ScanStats()
        entry.parquet.parent.mkdir(parents=True, exist_ok=True)
        tmp = entry.parquet.with_name(f".{entry.parquet.name}.{os.getpid()}.tmp")
        extra = [f"$.{c}" for c in JSON_COLUMNS]
        strings = ", ".join(f"json_extract_string({v(c)}, '$') AS {c}" for c in STRING_COLUMNS)
        jsons = ", ".join(
            f"v[{len(FIELDS) + i + 1}]::VARCHAR AS {c}" for i, c in enumerate(JSON_COLUMNS)
        )
        with _Files(self.location, files, stats) as paths:
            stats.files += len(paths)
            names = [f.name for f in files]
            self.con.execute("CREATE OR REPLACE TEMP TABLE names (path VARCHAR, name VARCHAR)")
            self.con.executemany(
                "INSERT INTO names VALUES (?, ?)", list(zip(paths, names, strict=True))
            )
            self.con.execute(
                f"COPY ({_classified(extra)} SELECT n.name AS file, line, ts, bad, {strings}, "
                f"{jsons} FROM c JOIN names n ON c.file = n.path ORDER BY bad NULLS FIRST, ts) "
                f"TO '{_sql_path(tmp)}' (FORMAT parquet, COMPRESSION zstd)",
                {"files": paths},
            )
            relation = "WITH c AS (SELECT * FROM read_parquet($files))"
            # line numbers of bad lines are looked up in the local copies
            local = dict(zip(names, paths, strict=True))
            _classify_stats(self.con, relation, {"files": [str(tmp)]}, {}, stats, local)
        tmp.replace(entry.parquet)
        cache.store(entry, files, stats)
        return stats


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


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
    cache: PartitionCache | bool | None = True,
) -> int:
    """How many actions match; bad lines counted in ``stats``."""
    if not files:
        return 0
    node = where_lang.parse(where) if where else None
    con = connect()
    try:
        scan = _Scan(
            con, location, files, stats, kinds="actions", node=node, cache=cache, defer_stats=True
        )
        with scan as (relation, params, shape):
            matching = action_conds(shape, agent, since, until, node, tool, params)
            if isinstance(shape, DirectShape):
                # JSONL read directly: classify and count the matches in the same pass
                head, tail = "(SELECT * FROM c WHERE ", ") AS m"
                assert matching.startswith(head) and matching.endswith(tail)
                match = matching[len(head) : -len(tail)]
                rows = con.execute(
                    f"{relation} SELECT bad, count(*), count(*) FILTER (WHERE {match}) "
                    "FROM c GROUP BY bad",
                    params,
                ).fetchall()
                total = sum(int(r[2]) for r in rows)
                _add_counts(con, relation, params, scan.display, stats, rows)
                return total
            row = con.execute(f"{relation} SELECT count(*) FROM {matching}", params).fetchone()
            return int(row[0]) if row else 0
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
    cache: PartitionCache | bool | None = True,
    limit: int | None = None,
) -> Iterator[ActionRecord]:
    """Matching action records in (ts, action_id) order (the first ``limit``); bad lines
    counted in ``stats``."""
    if not files:
        return
    node = where_lang.parse(where) if where else None
    con = connect()
    try:
        with _Scan(con, location, files, stats, kinds="actions", node=node, cache=cache) as (
            relation,
            params,
            shape,
        ):
            matching = action_conds(shape, agent, since, until, node, tool, params)
            cursor = con.execute(
                f"{relation} SELECT file, line FROM {matching} "
                f"ORDER BY ts, {shape.col('action_id')}"
                + (f" LIMIT {int(limit)}" if limit is not None else ""),
                params,
            )
            while batch := cursor.fetchmany(2048):
                for file, line in batch:
                    record = _validate(file, line, stats)
                    if record is not None:
                        yield record
    finally:
        con.close()


def _validate(file: str, line: str, stats: ScanStats) -> ActionRecord | None:
    try:
        return ActionRecord.model_validate(json.loads(line))
    except (ValidationError, ValueError) as exc:
        detail = str(exc).splitlines()[0]
        number = _line_number(file, line) if os.path.exists(file) else 0
        stats.add_bad(file, number, "invalid", detail)
        return None


Predicate = Callable[[Shape, dict[str, Any]], "str | list[str]"]


def find_lines(
    location: Location,
    files: list[RecordFile],
    predicate: Predicate,
    *,
    kinds: str,
    stats: ScanStats,
    cache: PartitionCache | bool | None = True,
    needle: str | None = None,
) -> list[str]:
    """Raw lines of the valid records matching ``predicate(shape, params)`` (SQL over the
    relation's fields and ``ts``), in time order."""
    if not files:
        return []
    con = connect()
    try:
        with _Scan(con, location, files, stats, kinds=kinds, cache=cache, needle=needle) as (
            relation,
            params,
            shape,
        ):
            preds = predicate(shape, params)
            alternatives = [preds] if isinstance(preds, str) else preds
            if not isinstance(shape, CachedShape):  # JSONL: one pass with OR, not one per
                alternatives = ["(" + ") OR (".join(alternatives) + ")"]
            rows = []
            for sql in alternatives:
                rows += con.execute(
                    f"{relation} SELECT line, epoch_us(ts) FROM c WHERE bad IS NULL AND ({sql})",
                    params,
                ).fetchall()
            rows.sort(key=lambda r: r[1])
    finally:
        con.close()
    return [str(r[0]) for r in rows]


PLAIN_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{4,200}$")


def needle_for(ident: str) -> str | None:
    """A substring every line holding ``ident`` as a JSON string value contains: ``"ident"``
    (JSON writers do not escape these characters). None when ``ident`` has others."""
    return f'"{ident}"' if PLAIN_ID.match(ident) else None
