"""The DuckDB engine: action queries over the day-partitioned JSONL (plain or gzip).

The file list handed to DuckDB is already pruned to the day partitions the window touches
(:mod:`agentctl.trace.source`), so a one-hour query opens one day's files, not thirty.

Three readers, one classification; each later one reads only the files where the one before
flagged a line, and decides them:

- the **strict scan** (counts and cache builds, :func:`_strict`) runs DuckDB's JSON reader
  without ``ignore_errors`` and with typed containers, so the shape of ``args``, ``effects`` and
  ``status`` is checked while parsing; it passes only the common shape of a valid action. A
  line it cannot take fails the query and DuckDB names its file, which is left out (up to
  STRICT_RETRIES files; beyond, every file goes to the fast scan);
- the **fast scan** (:func:`_fast`; listings without the cache) uses the same reader with
  ``ignore_errors`` and an explicit column list: the base fields, and for each ``--where`` path
  only that path (``args.amount`` is read as ``args STRUCT(amount JSON)``, so the rest of
  ``args`` is never materialised). A line the reader cannot take (not JSON, not an object)
  comes back as a row of NULLs; such rows, and every line failing the checks, are *flagged*;
- the **exact scan** (:func:`_classified`) reads each line as text and parses it with
  ``TRY(json_extract(line, [paths]))``: it names the reason of every bad line (``not_json``,
  ``not_object``, ``unknown_version``, ``unknown_record_type``, ``invalid``) with its text and
  location. The rows of the files the fast scan flagged come from it (its split into lines
  and its verdict are the ones counted and reported); it also reads the few files holding the
  rows a listing shows (for their text), and serves ``trace`` lookups (lines pre-filtered on
  the quoted id before any JSON is parsed).

A line a faster scan passes is one the next accepts (the same rules, or stricter ones, over the
same parser's values); tests hold them to that, and to the python engine's counts. Rows that a
listing shows are validated with the pydantic models, so what DuckDB selects and what Python
accepts cannot drift apart unnoticed (a matched row failing validation is counted as
``invalid``). With the partition cache (:mod:`agentctl.trace.cache`, on by default) the
scans' columns are kept in Parquet, written by the same pass that answers the first query.

S3 locations: the pruned objects are downloaded to a temporary directory first (no httpfs
extension needed; the download is bounded by the window's partitions).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from agentctl.trace import where as where_lang
from agentctl.trace.cache import MAX_PATHS, Cached, Entry, PartitionCache, default_root
from agentctl.trace.query import require_duckdb
from agentctl.trace.scan import (
    MAX_EXAMPLES,
    BadLine,
    ScanStats,
    loads_record,
    open_text,
    readable_lines,
)
from agentctl.trace.schema import SUPPORTED_VERSIONS, TS_ISO, TS_NUMBER, ActionStatus
from agentctl.trace.source import LocalLocation, Location, RecordFile

if TYPE_CHECKING:  # the models (pydantic) are imported by a listing, never by a count
    from agentctl.trace.records import ActionRecord

MEMORY_LIMIT = "512MB"
# Longer lines DuckDB's readers refuse (16 MB: read_json's maximum_object_size): a listing of
# such a file is read by python
MAX_LINE = 16 * 1024 * 1024
RECORD_TYPES = ("action", "model_call", "retrieval", "input")
# Fields pulled out of every line by ONE ``json_extract(line, [paths])`` call in the exact scan:
# each line is parsed once; the list holds JSON fragments, ``v[i]``.
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
    *("release_id", "parent_span_id", "error", "args", "effects", "duration_ms"),
    *("model_requested", "source"),
)
_F = {name: i + 1 for i, name in enumerate(FIELDS)}
# The fields the fast scan reads as JSON (``ts`` as text, cast in SQL): what the checks of the
# models need (:func:`_invalid`).
JSON_COLUMNS = (
    "record_type",
    "agent",
    "tool",
    "action_id",
    "idempotency_key",
    "unit_of_work",
    "status",
    "trace_id",
    "span_id",
    "schema_version",
    *("release_id", "parent_span_id", "error", "args", "effects", "duration_ms"),
    *("model_requested", "source"),
)
# with file, bad, ts; --where paths on demand. ``agent``, ``tool`` and the paths hold the
# field's JSON text (``"refund-agent"``), not its value: decoding a million strings is a
# measurable part of a scan, and a plain value compares as its JSON text (see _PLAIN and
# :meth:`Shape.eq`). ``record_type`` holds the type's number in RECORD_TYPE_CODES (NULL for any
# other, a flagged line): a small integer is cheaper to write to the cache than text.
CACHED_COLUMNS = ("record_type", "agent", "tool")
RECORD_TYPE_CODES = {t: i + 1 for i, t in enumerate(RECORD_TYPES)}
STATUSES = tuple(s.value for s in ActionStatus)
_BOOL_WORDS = ("0", "off", "f", "false", "n", "no", "1", "on", "t", "true", "y", "yes")
EFFECT_FIELDS = (
    *("system", "resource_type", "resource_id", "operation"),
    *("reversible", "idempotency_key", "details"),
)
# Values whose JSON text is just the value in double quotes, in any writer's output (and in
# DuckDB's re-serialised fragments): those compare as fragments, without a second parse.
_PLAIN = re.compile(r"[A-Za-z0-9 _.:@/+=,;#-]*")
# the lambda parameter over effects: a name no --where path (identifiers) can shadow
E = '"$e"'


def _cached(record_type: str, text: Callable[[str], str]) -> str:
    """The CACHED_COLUMNS of a scan's relation: ``record_type`` as its number (the SQL
    ``record_type``), ``agent`` and ``tool`` as the JSON text ``text(name)``."""
    return f"{record_type} AS record_type, " + ", ".join(
        f"{text(c)}::VARCHAR AS {c}" for c in CACHED_COLUMNS if c != "record_type"
    )


def _type_code(fragment: str) -> str:
    """The number of the record type whose JSON text is ``fragment`` (NULL for another)."""
    cases = " ".join(f"WHEN '\"{t}\"' THEN {n}" for t, n in RECORD_TYPE_CODES.items())
    return f"(CASE {fragment}::VARCHAR {cases} END)::UTINYINT"


def _number_text(x: str) -> str:
    """True when the JSON text ``x`` (VARCHAR) is a number: it starts with a digit or a minus,
    told by prefix comparisons (no call per value)."""
    return f"({x} >= '0' AND {x} < ':' OR {x} >= '-' AND {x} < '.')"


def _q(name: str) -> str:
    """A column name as an SQL identifier (a --where root may be a keyword: ``order.x``)."""
    return '"' + name.replace('"', '""') + '"'


def connect() -> Any:
    """A DuckDB connection (the entry points check first that DuckDB can run: require_duckdb)."""
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
    """How a relation ``c`` exposes the record fields: each as its JSON text (``col``)."""

    def eq(self, name: str, param: str, value: str, params: dict[str, Any]) -> str:
        """The field ``name`` is the string ``value`` (bound as ``$param``)."""
        if _PLAIN.fullmatch(value):
            params[param] = json.dumps(value)
            return f"{self.col(name)} = ${param}"
        params[param] = value
        return f"json_extract_string({self.col(name)}, '$') = ${param}"

    def col(self, name: str) -> str:
        raise NotImplementedError

    def where(self, node: where_lang.Node) -> str:
        raise NotImplementedError


class DirectShape(Shape):
    """The exact scan: ``v`` = fragments of FIELDS, then of ``extra`` paths (one parse per
    line)."""

    def __init__(self, extra: list[str]) -> None:
        self.extra = extra

    def col(self, name: str) -> str:
        return v(name)

    def where(self, node: where_lang.Node) -> str:
        frags = {p: f"v[{len(FIELDS) + i + 1}]" for i, p in enumerate(self.extra)}
        return where_lang.to_sql(node, _FragmentDialect(frags))


class ColumnShape(Shape):
    """The scans' relation and the cache: the CACHED_COLUMNS, and each --where path a column
    named after it (:func:`_ident`), all JSON text."""

    def col(self, name: str) -> str:
        return name

    def eq(self, name: str, param: str, value: str, params: dict[str, Any]) -> str:
        if name == "record_type":  # its number (CACHED_COLUMNS)
            code = RECORD_TYPE_CODES.get(value)
            return f"record_type = {code}" if code is not None else "false"
        return super().eq(name, param, value, params)

    def where(self, node: where_lang.Node) -> str:
        frags = {p: _ident(p) for p in _paths(node)}
        return where_lang.to_sql(node, _FragmentDialect(frags))


def _ident(path: str) -> str:
    """The column of a --where path in the fast scan and the cache: named by a digest, as
    DuckDB's names ignore case (``args.Amount`` and ``args.amount`` are two paths)."""
    return '"p_' + hashlib.sha256(path.encode()).hexdigest()[:20] + '"'


def _ts_sql(expr: str) -> str:
    """The timestamp of the string ``expr``, UTC without zone, as the models read it: only the
    forms :data:`agentctl.trace.records.TS_ISO` and ``TS_NUMBER`` (NULL for any other). A
    number (or a string of one) is Unix time as pydantic reads it (seconds, milliseconds beyond
    2e10); ``...Z`` (what writers of this schema write) casts without time zone rules; another
    zone or none (UTC) through TIMESTAMPTZ. Every scan uses it, and then :func:`_in_years`, so
    they accept the same timestamps as the models."""
    up = f"upper({expr})"  # `t` and `z` as DuckDB's casts want them
    cast = (
        f"CASE WHEN regexp_full_match({expr}, '{TS_NUMBER}') THEN "
        f"{_unix_ts(f'TRY_CAST({expr} AS DOUBLE)')} "
        f"WHEN NOT regexp_full_match({expr}, '{TS_ISO}') THEN NULL "
        # year 0 is 1 BC to DuckDB, and an offset can move it into year 1: python has no year 0
        f"WHEN starts_with({expr}, '0000') THEN NULL "
        f"WHEN ends_with({up}, 'Z') THEN TRY_CAST({up} AS TIMESTAMP) "
        f"ELSE TRY_CAST(TRY_CAST({up} AS TIMESTAMPTZ) AT TIME ZONE 'UTC' AS TIMESTAMP) END"
    )
    return f"({cast})"


def _unix_ts(num: str) -> str:
    """The timestamp of the Unix time ``num`` (a DOUBLE: seconds, milliseconds past 2e10) with
    pydantic's arithmetic, to the microsecond: the whole seconds (milliseconds) and the
    fraction rounded half away from zero (dividing by 1000 as a double would shift it)."""
    unit = f"(CASE WHEN abs({num}) > 2e10 THEN 1000 ELSE 1000000 END)"  # microseconds
    micros = (
        f"CAST(floor({num}) AS BIGINT) * {unit} "
        f"+ CAST(round(({num} - floor({num})) * {unit}) AS BIGINT)"
    )
    return f"TRY(make_timestamp({micros}))"


def _in_years(col: str) -> str:
    """``col`` (a timestamp of :func:`_ts_sql`, UTC) when the models can hold it, else NULL:
    python's datetime has the years 1 to 9999 (a separate step, so the cast is made once)."""
    return (
        f"(CASE WHEN {col} BETWEEN TIMESTAMP '0001-01-01' "
        f"AND TIMESTAMP '9999-12-31 23:59:59.999999' THEN {col} END)"
    )


def _ts_sdk_sql(expr: str) -> str:
    """The strict scan's timestamp: the SDK's forms only (``2026-11-24T01:00:00.123456Z``, or
    without the fraction), NULL (so flagged) for any other; cheaper than a regular expression.

    ``strptime`` consumes at most 4, 2, 2, 2, 2, 2 (and 6) digits with the separators between
    them: 27 characters (20 without the fraction), and it skips only leading and trailing
    white space. A string of exactly that length that starts with a digit and ends with the
    ``Z`` is therefore parsed with every field at full width: it is of the form, and its value
    is the models' (years from 0001: ``0000`` is 1 BC to DuckDB). Tests hold it to the regular
    expression of the form over mutated strings (``test_strict_scan.py``)."""
    return (
        f"(CASE WHEN {expr} >= '0001' AND {expr} < ':' AND ends_with({expr}, 'Z') THEN "
        f"CASE strlen({expr}) WHEN 27 THEN try_strptime({expr}, '%Y-%m-%dT%H:%M:%S.%fZ') "
        f"WHEN 20 THEN try_strptime({expr}, '%Y-%m-%dT%H:%M:%SZ') END END)"
    )


def _invalid(j: Callable[[str], str]) -> str:
    """SQL, true when a line of a known version and record type fails its model's checks
    (:mod:`agentctl.trace.records`) on a field other than ``ts``: ``j(name)`` is the JSON of the
    field, NULL when absent or JSON null (the fast scan's reader cannot tell them apart, so
    neither scan does; where the models treat them differently they are told apart on the text,
    and ``args`` / ``effects`` null are read as absent by the models too). Types as pydantic
    takes them: strings only for strings, the statuses, ``args`` an object, ``effects`` a list
    of effects, ``duration_ms`` a number (or numeric string). JSON types are told by the first
    character of the (normalised) JSON text: no second parse."""

    def required(x: str, nonempty: bool = True) -> str:
        empty = f" OR {x} = '\"\"'" if nonempty else ""
        return f"COALESCE(NOT starts_with({x}, '\"'){empty}, true)"

    def optional(x: str) -> str:
        return f"COALESCE(NOT starts_with({x}, '\"'), false)"

    statuses = ", ".join(f"'\"{s}\"'" for s in STATUSES)
    words = ", ".join(f"'{w}'" for w in _BOOL_WORDS)
    kinds = ", ".join(f'"{n}": "JSON"' for n in EFFECT_FIELDS)

    def effect_bad(e: str) -> str:
        strings = " OR ".join(
            required(f"{e}.{n}", False)
            for n in ("system", "resource_type", "resource_id", "operation")
        )
        rev = f"{e}.reversible"
        reversible = (
            f"COALESCE(CASE left({rev}, 1) WHEN 't' THEN false WHEN 'f' THEN false "
            f"WHEN '\"' THEN lower(json_extract_string({rev}, '$')) NOT IN ({words}) "
            f"WHEN '[' THEN true WHEN '{{' THEN true WHEN 'n' THEN true "
            f"ELSE TRY_CAST({rev} AS DOUBLE) NOT IN (0, 1) END, true)"
        )
        plain = " AND ".join(
            f"left({e}.{n}, 1) = '\"'"
            for n in ("system", "resource_type", "resource_id", "operation")
        )
        # the common shape first: the field-by-field checks only for the others
        return (
            f"CASE WHEN {plain} AND {rev} IN ('true', 'false') "
            f"AND COALESCE(left({e}.idempotency_key, 1), '\"') = '\"' "
            f"AND COALESCE(left({e}.details, 1), '{{') = '{{' THEN false ELSE "
            f"{e} IS NULL OR {strings} OR {reversible} OR {optional(f'{e}.idempotency_key')} "
            f"OR COALESCE(NOT starts_with({e}.details, '{{'), false) END"
        )

    fx = j("effects")
    # decoded, a null ``details`` (rejected) reads like an absent one (accepted): told apart on
    # the text, where ``"details":null`` is rare
    effects = (
        f"COALESCE(NOT starts_with({fx}, '[') OR (len({fx}) > 2 AND (list_bool_or(list_transform("
        f"from_json({fx}, '[{{{kinds}}}]'), lambda {E}: {effect_bad(E)})) "
        f"OR (contains({fx}, '\"details\":null') AND list_contains(json_extract({fx}, "
        f"'$[*].details')::VARCHAR[], 'null')))), false)"
    )
    # a number; an integer past the largest float (python's float() of it overflows) is not,
    # though 1e400 and Infinity (infinity) are
    d = j("duration_ms")
    duration = (
        f"COALESCE(CASE left({d}, 1) WHEN '\"' THEN "
        f"TRY_CAST(json_extract_string({d}, '$') AS DOUBLE) IS NULL "
        f"WHEN '[' THEN true WHEN '{{' THEN true "
        f"ELSE regexp_full_match({d}, '-?[0-9]+') AND NOT isfinite(TRY_CAST({d} AS DOUBLE)) END, "
        "false)"
    )
    rtype = j("record_type")
    common = [required(j(n)) for n in ("agent", "trace_id", "span_id")]
    common += [optional(j(n)) for n in ("release_id", "parent_span_id")]
    action = [required(j(n)) for n in ("action_id", "unit_of_work", "tool", "idempotency_key")]
    action += [
        f"COALESCE({j('status')} NOT IN ({statuses}), true)",
        optional(j("error")),
        f"COALESCE(NOT starts_with({j('args')}, '{{'), false)",
        effects,
        duration,
    ]
    return (
        "(" + " OR ".join(common) + f" OR CASE {rtype} "
        f"WHEN '\"action\"' THEN " + " OR ".join(action) + " "
        f"WHEN '\"model_call\"' THEN {required(j('model_requested'), False)} "
        f"WHEN '\"retrieval\"' THEN {required(j('source'), False)} "
        f"ELSE {optional(j('unit_of_work'))} END)"
    )


_READ_LINES = f"""read_csv({{source}}, columns = {{{{'line': 'VARCHAR'}}}}, header = false,
                      auto_detect = false, delim = '\x01', quote = '', escape = '',
                      strict_mode = false, filename = true, hive_partitioning = false,
                      max_line_size = {MAX_LINE})"""


def _classified(
    extra: list[str] | None = None,
    prefilter: bool = False,
    from_table: bool = False,
    source: str = "$files",
) -> str:
    """The exact scan: SQL of the relation ``c(file, line, v, ts, bad)`` over the files in
    ``source`` (a list parameter; ``from_table``: over their lines as python read them into the
    temporary table ``exact_lines``, see :func:`_exact`); ``v`` holds the fragments of FIELDS
    and then of ``extra`` JSON paths."""
    source = (
        "(SELECT * FROM exact_lines WHERE list_contains($files, filename))"
        if from_table
        else _READ_LINES.format(source=source)
    )
    versions = ", ".join(f"'{n}'" for n in sorted(SUPPORTED_VERSIONS))
    paths = (
        "[" + ", ".join(f"'$.{f}'" for f in FIELDS) + "".join(f", '{p}'" for p in extra or []) + "]"
    )
    invalid = _invalid(lambda name: f"NULLIF({v(name)}, 'null')")
    types = ", ".join(f"'\"{t}\"'" for t in RECORD_TYPES)
    # a JSON number is Unix time in any number form (`1.7e9` too), a string only in TS_NUMBER's
    # or TS_ISO's (the fast scan reads both as text and flags `1.7e9`: decided here)
    frag = f"{v('ts')}::VARCHAR"
    ts = (
        f"CASE WHEN {_number_text(frag)} "
        f"THEN {_unix_ts(f'TRY_CAST({frag} AS DOUBLE)')} ELSE {_ts_sql(text('ts'))} END"
    )
    # MATERIALIZED with a prefilter: else the optimizer may push a caller's condition on ``v``
    # below the substring test, parsing every line instead of the few that hold the needle.
    return f"""
    WITH raw AS {"MATERIALIZED " if prefilter else ""}(
        SELECT filename AS file, line, TRY(json_extract(line, {paths})) AS v
        FROM {source}
        WHERE line IS NOT NULL AND (starts_with(line, '{{') OR trim(line) <> '')
              {"AND contains(line, $needle)" if prefilter else ""}
    ), c AS (
        SELECT file, line, v, {_in_years("t")}::TIMESTAMPTZ AS ts,
            CASE
                WHEN v IS NULL THEN 'not_json'
                WHEN NOT (starts_with(line, '{{') OR starts_with(ltrim(line), '{{'))
                    THEN 'not_object'
                WHEN {v("schema_version")} IS NULL OR {v("schema_version")} NOT IN ({versions})
                    THEN 'unknown_version'
                WHEN {v("record_type")} IS NULL OR {v("record_type")} NOT IN ({types})
                    THEN 'unknown_record_type'
                WHEN ts IS NULL OR {invalid} THEN 'invalid'
                ELSE NULL
            END AS bad
        FROM (SELECT *, {ts} AS t FROM raw)
    )"""


def _collides(paths: list[str]) -> bool:
    """Whether two names the fast scan would read as columns differ only in case (DuckDB's
    column names do not tell them apart): then the --where paths are read from the text."""
    roots = {p[2:].split(".")[0] for p in paths} | set(JSON_COLUMNS) | {"ts"}
    return len({r.lower() for r in roots}) < len(roots)


def _read_columns(
    paths: list[str], base: tuple[str, ...] = JSON_COLUMNS, structs: tuple[str, ...] | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """The ``columns`` map of the fast scan and, per --where path, the SQL of its JSON text.

    A path under a base field reads that field (``json_extract`` below it); any other first name
    is read as a STRUCT of just the names asked under it, or as JSON when a path asks for it
    whole, goes deeper than one level, or asks names differing only in case (then
    ``json_extract`` on that value, which tells them apart). ``structs``: the only first names
    that may be read as a STRUCT (None: any); ``base``: the fields read as JSON."""
    columns = {c: "JSON" for c in base} | {"ts": "VARCHAR"}
    frags: dict[str, str] = {}
    roots: dict[str, list[tuple[str, ...]]] = {}
    for path in paths:
        parts = tuple(path[2:].split("."))
        if parts[0] == "ts":
            frags[path] = "to_json(ts)" if len(parts) == 1 else "NULL::JSON"
        elif parts[0] in columns and len(parts) == 1:
            frags[path] = _q(parts[0])
        elif parts[0] in columns:
            frags[path] = f"json_extract({_q(parts[0])}, '{_sub(parts[1:])}')"
        else:
            roots.setdefault(parts[0], []).append(parts[1:])
    for root, rests in roots.items():
        names = sorted({r[0] for r in rests if r})
        if (
            (structs is None or root in structs)
            and all(len(r) == 1 for r in rests)
            and len({n.lower() for n in names}) == len(names)
        ):
            columns[root] = "STRUCT(" + ", ".join(f'"{n}" JSON' for n in names) + ")"
            for rest in rests:
                frags["$." + ".".join((root, *rest))] = f"struct_extract({_q(root)}, '{rest[0]}')"
        else:
            columns[root] = "JSON"
            for rest in rests:
                path = "$." + ".".join((root, *rest))
                frags[path] = _q(root) if not rest else f"json_extract({_q(root)}, '{_sub(rest)}')"
    return columns, frags


def _spec(columns: dict[str, str]) -> str:
    """A ``columns`` argument of read_json (types quoted as SQL strings)."""
    return "{" + ", ".join(f"'{k}': '{t}'" for k, t in columns.items()) + "}"


def _sub(rest: tuple[str, ...]) -> str:
    return "$" + "".join(f'."{p}"' for p in rest)


def _fast(paths: list[str], source: str = "$files") -> str:
    """The fast scan: SQL selecting ``file`` (index in ``$files``, from 0), ``bad`` (the line
    is flagged), ``ts`` (UTC, no zone), the CACHED_COLUMNS and one column per --where path
    (named by :func:`_ident`), JSON text, over the files in ``source`` (a list parameter: all
    of ``$files`` or some)."""
    if _collides(paths):
        assert source == "$files", "a subset is read only after the strict scan, never here"
        return _fast_from_text(paths)
    columns, frags = _read_columns(paths)
    versions = ", ".join(f"'{n}'" for n in sorted(SUPPORTED_VERSIONS))
    types = ", ".join(f"'\"{t}\"'" for t in RECORD_TYPES)
    flag = " OR ".join(
        [
            "schema_version IS NULL",
            f"schema_version NOT IN ({versions})",
            "record_type IS NULL",
            f"record_type NOT IN ({types})",
            '"$ts" IS NULL',
            _invalid(lambda name: name),
        ]
    )
    cached = _cached(_type_code("record_type"), lambda c: c)
    extra = "".join(f", {sql} AS {_ident(p)}" for p, sql in frags.items())
    return f"""
        SELECT ("$fi" - 1)::UINTEGER AS file,
            COALESCE({flag}, true) AS bad, "$ts" AS ts, {cached}{extra}
        FROM (
            SELECT *, {_in_years('"$t"')} AS "$ts" FROM (
            -- names with `$` cannot clash with a record's fields (--where names are identifiers)
            SELECT *, {_ts_sql("ts")} AS "$t", list_position($files, "$file") AS "$fi"
            FROM read_json({source}, format = 'newline_delimited', columns = {_spec(columns)},
                           ignore_errors = true, filename = '$file', hive_partitioning = false)
        ))"""


def _strict_ok(paths: list[str]) -> bool:
    """Whether the strict scan can read these --where paths: not when one reads a field it types
    as other than JSON (``status``, ``effects``, ``args`` whole), or names collide in case."""
    typed = {"status", "effects", "args"}
    return not _collides(paths) and not any(
        p[2:] in typed or p[2:].split(".")[0] in typed - {"args"} for p in paths
    )


def _strict(paths: list[str], source: str = "$files") -> str:
    """The strict scan: the relation of :func:`_fast` (same columns) from a cheaper read that
    accepts only the common shape of a valid action and flags every other line.

    DuckDB's JSON reader is run without ``ignore_errors`` and with typed containers: ``args``
    a STRUCT, ``effects`` a list of STRUCTs (``details`` a STRUCT), ``status`` an ENUM of the
    statuses. A line whose container or status does not fit (``args`` a list, an effect that
    is a string, ``status: "bogus"``; also a line that is not JSON) makes the whole query fail,
    and the caller reads the files with :func:`_fast` instead. The remaining checks are on the
    first character of the JSON text: no field is re-parsed, and ``args`` and ``effects`` are
    never written back as JSON text, which is where :func:`_fast` spends its time.

    A line it does not flag is one the models accept: a schema version supported, an action,
    non-empty strings for the required ids, strings or null for the optional ones, each
    effect's strings, a ``reversible`` true or false and ``details`` an object, a number (or
    null) for ``duration_ms``, a timestamp in the SDK's form. It flags more than :func:`_fast`
    does (any other timestamp form, any other record type, a ``details`` absent or null,
    ``reversible: "yes"``, a numeric string for ``duration_ms``): the caller reads the files
    holding a flagged line with :func:`_fast`, which decides each line exactly. Tests hold it
    to that (``test_strict_scan.py``)."""
    typed = ("args", "effects", "status")
    columns, frags = _read_columns(
        paths, tuple(c for c in JSON_COLUMNS if c not in typed), structs=("args",)
    )
    statuses = ", ".join(f"''{s}''" for s in STATUSES)
    columns["status"] = f"ENUM({statuses})"
    columns["effects"] = (
        "STRUCT("
        + ", ".join(f'"{n}" JSON' for n in EFFECT_FIELDS if n != "details")
        + ', "details" STRUCT("$" JSON))[]'
    )
    # an object, a STRUCT of the names --where asks; JSON when it asks for more (then checked)
    args_ok = "args::VARCHAR >= '{'" if columns.get("args") == "JSON" else "args IS NOT NULL"
    columns.setdefault("args", 'STRUCT("$" JSON)')
    versions = ", ".join(f"'{n}'" for n in sorted(SUPPORTED_VERSIONS))

    # JSON text starting with a double quote: at least '"' and below '#', the next character.
    # String comparisons are decided on the prefix DuckDB keeps inline: no call per value.
    def quoted(x: str) -> str:
        return f"({x}::VARCHAR >= '\"' AND {x}::VARCHAR < '#')"

    def string(x: str) -> str:
        # a non-empty JSON string: above '""' (a string starting with a space or a `!`, below
        # the closing quote, is flagged too, and decided by the fast scan)
        return f"({x}::VARCHAR > '\"\"' AND {x}::VARCHAR < '#')"

    def optional(x: str) -> str:  # a JSON string or null / absent
        return f"COALESCE({quoted(x)}, true)"

    effect = " AND ".join(
        [
            *(quoted(f"{E}.{n}") for n in ("system", "resource_type", "resource_id")),
            quoted(f"{E}.operation"),
            f"{E}.reversible IN ('true', 'false')",
            optional(f"{E}.idempotency_key"),
            f"{E}.details IS NOT NULL",
        ]
    )
    required = ("agent", "trace_id", "span_id", "action_id", "unit_of_work", "tool")
    ok = " AND ".join(
        [
            f"schema_version IN ({versions})",
            "record_type = '\"action\"'",
            *(string(n) for n in (*required, "idempotency_key")),
            *(optional(n) for n in ("release_id", "parent_span_id", "error")),
            "status IS NOT NULL",
            args_ok,
            "effects IS NOT NULL",
            "COALESCE(list_bool_and(list_transform(effects, "
            f"lambda {E}: COALESCE({effect}, false))), true)",
            # a number; one of 300 characters or more may be an integer past the largest
            # float, which the models refuse: flagged
            f"COALESCE({_number_text('duration_ms::VARCHAR')} "
            "AND strlen(duration_ms::VARCHAR) < 300, true)",
            '"$ts" IS NOT NULL',
        ]
    )
    # a line not flagged is an action; a file with a flagged line is read again (_tiers)
    cached = _cached(f"{RECORD_TYPE_CODES['action']}::UTINYINT", lambda c: c)
    extra = "".join(f", {sql} AS {_ident(p)}" for p, sql in frags.items())
    return f"""
        SELECT ("$fi" - 1)::UINTEGER AS file,
            NOT COALESCE({ok}, false) AS bad, "$ts" AS ts, {cached}{extra}
        FROM (
            SELECT *, {_ts_sdk_sql("ts")} AS "$ts", list_position($files, "$file") AS "$fi"
            FROM read_json({source}, format = 'newline_delimited', columns = {_spec(columns)},
                           filename = '$file', hive_partitioning = false)
        )"""


def _fast_from_text(paths: list[str], source: str = "$files") -> str:
    """The fast scan's relation computed by the exact scan (lines parsed as text): for --where
    paths whose names differ only in case, and for the files where the fast scan flagged a
    line (:func:`_decided`)."""
    cached = _cached(_type_code(v("record_type")), v)
    extra = "".join(f", v[{len(FIELDS) + i + 1}] AS {_ident(p)}" for i, p in enumerate(paths))
    return f"""
        {_classified(paths, source=source)}
        SELECT (list_position($files, file) - 1)::UINTEGER AS file, bad IS NOT NULL AS bad,
            ts::TIMESTAMP AS ts, {cached}{extra}
        FROM c"""


def action_conds(
    shape: Shape,
    agent: str,
    since: datetime,
    until: datetime,
    node: where_lang.Node | None,
    tool: str | None,
    params: dict[str, Any],
) -> str:
    """The condition selecting exactly the matching action rows of the relation."""
    if isinstance(shape, ColumnShape):
        since, until = _naive(since), _naive(until)
        conds = ["NOT bad"]
    else:
        conds = ["bad IS NULL"]
    params.update(since=since, until=until)
    conds += [
        shape.eq("record_type", "rtype", "action", params),
        shape.eq("agent", "agent", agent, params),
        "ts >= $since",
        "ts < $until",
    ]
    if tool:
        conds.append(shape.eq("tool", "tool", tool, params))
    if node is not None:
        conds.append(shape.where(node))
    return " AND ".join(conds)


def _naive(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts


class _Files:
    """Local JSONL paths DuckDB can open for the record files: local JSONL as they are; S3
    objects downloaded and OTLP JSON normalised into a temporary directory."""

    def __init__(
        self,
        location: Location,
        files: list[RecordFile],
        stats: ScanStats | Callable[[RecordFile], ScanStats],
        sanitize: frozenset[str] = frozenset(),
    ) -> None:
        self.location = location
        self.files = files
        self.stats = stats
        self.sanitize = sanitize  # names of files that are not valid UTF-8
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def _tmpdir(self) -> Path:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="agentctl-trace-")
        return Path(self._tmp.name)

    def __enter__(self) -> list[str]:
        paths = []
        for i, file in enumerate(self.files):
            if file.kind == "otlp":
                from agentctl.trace.otlp import normalise
                from agentctl.trace.scan import open_text, readable_lines

                stats = self.stats(file) if callable(self.stats) else self.stats
                with self.location.open(file) as body, open_text(file.name, body) as text:
                    # a gzip export cut short keeps what came before (`truncated_gzip`)
                    content = "".join(readable_lines(file.name, text, stats))
                records = normalise(file.name, content, stats)
                path = self._tmpdir() / f"{i:06d}.jsonl"
                path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
            elif file.name in self.sanitize:
                # DuckDB refuses the file; read it as the python engine does (bad bytes become
                # U+FFFD; a damaged gzip stream keeps what came before it, the rest counted as
                # one `truncated_gzip` line), so its lines are classified instead of lost
                from agentctl.trace.scan import open_text, readable_lines

                stats = self.stats(file) if callable(self.stats) else self.stats
                path = self._tmpdir() / f"{i:06d}.jsonl"
                with (
                    self.location.open(file) as body,
                    open_text(file.name, body) as text,
                    open(path, "w", encoding="utf-8") as out,
                ):
                    out.writelines(readable_lines(file.name, text, stats))
            elif isinstance(self.location, LocalLocation) and not _GLOB.search(file.name):
                path = Path(file.name)
            elif isinstance(self.location, LocalLocation):
                # DuckDB would expand `*?[{` in the name: a link with a plain name instead
                suffix = ".jsonl.gz" if file.name.endswith(".gz") else ".jsonl"
                path = self._tmpdir() / f"{i:06d}{suffix}"
                path.symlink_to(Path(file.name).resolve())
            else:
                suffix = ".jsonl.gz" if file.name.endswith(".gz") else ".jsonl"
                path = self._tmpdir() / f"{i:06d}{suffix}"
                with self.location.open(file) as body, open(path, "wb") as out:
                    shutil.copyfileobj(body, out, 1 << 20)
            paths.append(str(path))
        return paths

    def __exit__(self, *exc: object) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


_GLOB = re.compile(r"[*?\[\]{}]")


class _NotUtf8(Exception):
    """Files DuckDB's readers refuse: to be read again from a sanitised copy."""

    def __init__(self, names: set[str]) -> None:
        super().__init__(", ".join(sorted(names)))
        self.names = names


def _utf8_ok(path: str) -> bool:
    import codecs
    import gzip

    decoder = codecs.getincrementaldecoder("utf-8")()
    with gzip.open(path) if path.endswith(".gz") else open(path, "rb") as raw:
        try:
            while chunk := raw.read(1 << 24):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def _check_utf8(files: list[RecordFile], paths: list[str], indexes: list[int]) -> None:
    """Raise :class:`_NotUtf8` for the files (of ``indexes``) that are not valid UTF-8: the
    fast scan saw their lines as unreadable, the exact scan would refuse them."""
    bad = {files[i].name for i in indexes if not _utf8_ok(paths[i])}
    if bad:
        raise _NotUtf8(bad)


def _exact_stats(
    con: Any, paths: list[str], names: list[str], stats: ScanStats, room: int = MAX_EXAMPLES
) -> None:
    """Lines and bad lines (by reason, first locations) of the files ``paths`` (shown as
    ``names``), from the exact scan; a file DuckDB cannot read at all is read by Python."""
    import duckdb

    display = dict(zip(paths, names, strict=True))
    try:
        rows = con.execute(
            f"{_classified()} SELECT bad, count(*) FROM c GROUP BY bad", {"files": paths}
        ).fetchall()
    except duckdb.Error:
        for path, name in zip(paths, names, strict=True):
            _python_stats(path, name, stats)
        return
    for bad, count in rows:
        stats.lines += int(count)
        if bad is not None:
            stats.bad[str(bad)] += int(count)
    room = min(room, MAX_EXAMPLES - len(stats.examples))
    if stats.bad_total and room > 0:
        # no ORDER BY: DuckDB keeps the order of the files and of their lines (insertion order),
        # so these are the first bad lines
        examples = con.execute(
            f"{_classified()} SELECT bad, file, line FROM c WHERE bad IS NOT NULL LIMIT {room}",
            {"files": paths},
        ).fetchall()
        numbers = _line_numbers([(str(file), line or "") for _, file, line in examples])
        for (bad, file, line), number in zip(examples, numbers, strict=True):
            stats.examples.append(
                BadLine(display.get(file, file), number, str(bad), (line or "")[:80])
            )


def _python_stats(path: str, name: str, stats: ScanStats) -> None:
    from agentctl.trace.scan import decode_lines, open_text, validate

    with open(path, "rb") as raw, open_text(path, raw) as text:
        for number, data in decode_lines(name, text, stats):
            validate(name, number, data, stats)


def _line_number(path: str, line: str) -> int:
    """The 1-based line number of the first ``line`` in ``path`` (a rejected listing row)."""
    return _line_numbers([(path, line)])[0]


def _line_numbers(lines: list[tuple[str, str]]) -> list[int]:
    """The 1-based line numbers of ``(path, line)`` in the order they come in their files (a
    repeated text is its next occurrence); 0 where the file is gone (a temporary copy)."""
    from agentctl.trace.scan import open_text

    out = [0] * len(lines)
    by_path: dict[str, list[int]] = {}
    for i, (path, _) in enumerate(lines):
        by_path.setdefault(path, []).append(i)
    for path, wanted in by_path.items():
        if not os.path.exists(path):
            continue
        k = 0
        with open(path, "rb") as raw, open_text(path, raw) as text:
            for n, candidate in enumerate(text, start=1):
                if candidate.rstrip("\r\n") == lines[wanted[k]][1]:
                    out[wanted[k]] = n
                    k += 1
                    if k == len(wanted):
                        break
    return out


def _cache_of(cache: PartitionCache | bool | None) -> PartitionCache | None:
    if cache is True:
        root = default_root()
        return PartitionCache(root) if root is not None else None
    return cache or None


class _Rows:
    """The fast-scan rows of the record files: from the cache (building what is missing, in
    the same pass as it reads) or straight from the JSONL. Fills ``stats``; flagged files are
    classified by the exact scan for the report.

    ``relation``: SQL of ``r(file, bad, ts, record_type, agent, tool, <paths>)``, with
    ``params``; ``file`` names a source file through :meth:`source`."""

    def __init__(
        self,
        con: Any,
        location: Location,
        files: list[RecordFile],
        stats: ScanStats,
        *,
        kinds: str,
        paths: list[str],
        cache: PartitionCache | bool | None,
        sanitize: frozenset[str] = frozenset(),
        match: tuple[str, dict[str, Any]] | None = None,
    ) -> None:
        self.sanitize = sanitize
        # with `match`, a build counts the matches of what it writes in the pass that reads it
        # back for the stats: `fresh` are those batches, `fresh_matches` their matches
        self.match = match
        self.fresh: set[str] = set()
        self.fresh_matches = 0
        self.selects: dict[str, str] = {}  # batch -> its SELECT (parameter $b<i>)
        self.batch_params: dict[str, str] = {}
        self.con = con
        self.location = location
        self.files = files
        self.stats = stats
        self.kinds = kinds
        self.paths = paths
        self.cache = _cache_of(cache) if len(paths) <= MAX_PATHS else None
        self._direct: _Files | None = None
        self._lock: IO[bytes] | None = None  # shared: no batch is collected while we read
        self._collect: Path | None = None  # collected on exit, when the lock is released
        self.names: dict[str, list[str]] = {}  # batch (or "" = direct) -> file index -> name
        self._relation: str | None = None  # direct mode: built when a listing asks
        self.params: dict[str, Any] = {}
        self._local: list[str] = []

    @property
    def relation(self) -> str:
        """SQL of the rows (see the class); direct mode: the fast scan of the JSONL (a count
        reads them through :meth:`count_direct` instead)."""
        if self._relation is None:
            self._relation = f"(SELECT '' AS batch, * FROM ({_fast(self.paths)}))"
        return self._relation

    def source(self, batch: str, index: int) -> RecordFile:
        name = self.names[batch][index]
        return next(f for f in self.files if f.name == name)

    def __enter__(self) -> _Rows:
        if self.cache is not None:
            import duckdb

            try:
                self._cached(self.cache)
                return self
            except (OSError, duckdb.IOException):
                self._release()
                self.cache = None  # unwritable cache directory: read directly
        self._direct = _Files(self.location, self.files, self.stats, self.sanitize)
        paths = self._direct.__enter__()
        self.stats.files += len(paths)
        self.names[""] = [f.name for f in self.files]
        self.params = {"files": paths}
        self._local = paths
        return self

    def count_direct(self, match: str, params: dict[str, Any]) -> int:
        """Direct mode in one pass: lines, flagged lines and matches per file."""

        def per_file(relation: str) -> str:  # not str.format: `match` holds --where literals
            return (
                "SELECT file, count(*), count(*) FILTER (WHERE bad), "
                f"count(*) FILTER (WHERE {match}) FROM {relation} GROUP BY file"
            )

        return self.tally(_strict_first(self.con, self.paths, per_file, self.params | params))

    def tally(self, rows: list[tuple[Any, ...]]) -> int:
        """Add ``(file, lines, flagged, matches)`` rows (direct mode) to the stats; the exact
        scan classifies the files with flagged lines. Returns the matches."""
        flagged = sorted(int(f) for f, _, bad, _ in rows if bad)
        _check_utf8(self.files, self._local, flagged)
        self.stats.lines += sum(int(n) for f, n, bad, _ in rows if not bad)
        if flagged:
            _exact_stats(
                self.con,
                [self._local[i] for i in flagged],
                [self.files[i].name for i in flagged],
                self.stats,
            )
        return sum(int(r[3]) for r in rows)

    def __exit__(self, *exc: object) -> None:
        if self._direct is not None:
            self._direct.__exit__(*exc)
        self._release()
        if self.cache is not None and self._collect is not None:
            self.cache.collect(self._collect)

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _cached(self, cache: PartitionCache) -> None:
        by_part: dict[str, list[RecordFile]] = {}
        for f in self.files:
            by_part.setdefault(f.partition, []).append(f)
        ready: dict[str, Cached] = {}
        stale: dict[str, tuple[Entry, list[str]]] = {}
        # held from the first lookup until the batches were read (__exit__)
        self._lock = cache.reading(cache.entry(self.location.url, "", self.kinds).base)
        for part, files in sorted(by_part.items()):
            entry = cache.entry(self.location.url, part, self.kinds)
            found = cache.lookup(entry, files)
            if found is not None and set(self.paths) <= set(found.paths):
                ready[part] = found
            else:
                stale[part] = (entry, found.paths if found is not None else [])
        if stale:
            ready.update(self._build(cache, by_part, stale))
        total = ScanStats()
        batches: dict[str, list[str]] = {}
        for part in sorted(ready):
            total.merge(ready[part].stats)
            batches.setdefault(str(ready[part].batch), []).append(part)
            self.names[str(ready[part].batch)] = ready[part].names
        self.stats.merge(total)
        cols = ", ".join(["file", "bad", "ts", *CACHED_COLUMNS, *map(_ident, self.paths)])
        selects = []
        for i, (batch, parts) in enumerate(sorted(batches.items())):
            self.params[f"b{i}"] = batch
            wanted = set(parts)
            indexes = [n for n, name in enumerate(self.names[batch]) if _part(name) in wanted]
            listed = ", ".join(map(str, indexes))
            selects.append(
                f"SELECT $b{i} AS batch, {cols} FROM read_parquet($b{i}) WHERE file IN ({listed})"
            )
            self.selects[batch] = selects[-1]
            self.batch_params[batch] = f"b{i}"
        self._relation = "(" + " UNION ALL ".join(selects) + ")"
        if not selects:  # no files: an empty relation of the same shape
            self._relation = f"(SELECT '' AS batch, * FROM ({_fast(self.paths)}) WHERE false)"
            self.params["files"] = []

    def _build(
        self,
        cache: PartitionCache,
        by_part: dict[str, list[RecordFile]],
        stale: dict[str, tuple[Entry, list[str]]],
    ) -> dict[str, Cached]:
        """Parse the stale partitions once into one new batch; their manifests name it."""
        paths = list(self.paths)
        for _, old in stale.values():
            paths += [p for p in old if p not in paths][: max(MAX_PATHS - len(paths), 0)]
        files = [f for part in sorted(stale) for f in by_part[part]]
        part_stats = {part: ScanStats(files=len(by_part[part])) for part in stale}
        first = next(iter(stale.values()))[0]
        tmp, final = cache.new_batch(first)
        try:
            stats_of = lambda f: part_stats[f.partition]  # noqa: E731
            with _Files(self.location, files, stats_of, self.sanitize) as local:
                match, params = self.match or ("false", {})
                rows = _copy_scan(self.con, paths, local, tmp, match, params)
                _check_utf8(files, local, [int(i) for i, _, flagged, _ in rows if flagged])
                matches = sum(int(r[3]) for r in rows)
                for index, lines, flagged, _ in sorted(rows):
                    f = files[int(index)]
                    if flagged:
                        _exact_stats(
                            self.con, [local[int(index)]], [f.name], part_stats[f.partition]
                        )
                    else:
                        part_stats[f.partition].lines += int(lines)
            os.utime(tmp)  # its age is from now: a fresh batch never looks old to collect
            tmp.replace(final)
        finally:
            tmp.unlink(missing_ok=True)
        self.fresh.add(str(final))
        self.fresh_matches += matches
        names = [f.name for f in files]
        out = {}
        for part, (entry, _) in stale.items():
            cache.store(entry, by_part[part], part_stats[part], final, names, paths)
            out[part] = Cached(part_stats[part], final, names, paths)
        self._collect = first.base
        return out


# files the strict scan leaves out, one per failed attempt, before it gives up on the query
STRICT_RETRIES = 3
# a batch's column holding the match of the query that built it (a name no --where path takes)
MATCH_COLUMN = '"$match"'


def _strict_pass(
    files: list[str], run: Callable[[dict[str, Any]], list[tuple[Any, ...]]]
) -> tuple[list[tuple[Any, ...]], list[int]] | None:
    """``run({"keep": [...]})`` (a strict scan reading ``$keep``): its rows and the indexes of
    the files left out, or None when it still fails. A line the strict read cannot take (a
    half-written last line, a line of another shape) fails the whole query, and DuckDB names
    its file: that file is left out (for the fast scan) and the rest read again, up to
    STRICT_RETRIES files; a failure that names no file gives up at once."""
    import duckdb

    skipped: list[int] = []
    while True:
        keep = [f for i, f in enumerate(files) if i not in skipped]
        try:
            return run({"keep": keep}), skipped
        except duckdb.Error as exc:
            named = [i for i in range(len(files)) if f'file "{files[i]}"' in str(exc)]
            if len(named) != 1 or named[0] in skipped or len(skipped) == STRICT_RETRIES:
                return None
            skipped.append(named[0])


def _flagged(rows: list[tuple[Any, ...]], also: list[int] | None = None) -> list[int]:
    """Indexes of the files with a flagged line in ``(file, lines, flagged, ...)`` rows, and
    ``also``."""
    return sorted({int(r[0]) for r in rows if r[2]} | set(also or ()))


Rows = list[tuple[Any, ...]]


def _tiers(
    paths: list[str],
    files: list[str],
    read: Callable[[str, dict[str, Any]], Rows],
    again: Callable[[Rows, list[int], str], Rows],
) -> Rows:
    """``(file, lines, flagged, ...)`` rows of the files, each file decided by the first scan
    that does not flag it: ``read(relation, params)`` reads a relation over ``files`` (plus
    ``params``); ``again(rows, flagged, relation)`` reads the flagged files again with a
    relation over ``$subset`` and returns ``rows`` with theirs replaced (restoring what it
    changed before it raises).

    The strict scan first; for the files where it flagged a line or that it left out, the fast
    scan (all files, when the strict one fails or cannot read these --where paths); for the
    files where that flagged a line, the exact scan, whose verdict (and split into lines) is the
    one reported."""
    import duckdb

    rows: Rows | None = None
    if _strict_ok(paths):
        got = _strict_pass(files, lambda keep: read(_strict(paths, "$keep"), keep))
        if got is not None:
            rows = got[0]
            if flagged := _flagged(rows, got[1]):
                rows = again(rows, flagged, _fast(paths, "$subset"))
    if rows is None:
        rows = read(_fast(paths), {})
    if (flagged := _flagged(rows)) and not _collides(paths):
        with contextlib.suppress(duckdb.Error):  # a line over MAX_LINE: the fast rows stay
            rows = again(rows, flagged, _fast_from_text(paths, "$subset"))
    return rows


def _strict_first(
    con: Any, paths: list[str], query: Callable[[str], str], params: dict[str, Any]
) -> Rows:
    """Rows of ``query(relation)``, a query grouped by ``file`` whose third column counts the
    flagged lines, over the files in ``params["files"]``, each file from the scan that decides
    it (:func:`_tiers`)."""

    def read(relation: str, more: dict[str, Any]) -> Rows:
        return list(con.execute(query(f"({relation})"), params | more).fetchall())

    def again(rows: Rows, flagged: list[int], relation: str) -> Rows:
        more = read(relation, {"subset": [params["files"][i] for i in flagged]})
        return [r for r in rows if int(r[0]) not in flagged] + more

    return _tiers(paths, params["files"], read, again)


def _copy_scan(
    con: Any, paths: list[str], local: list[str], tmp: Path, match: str, params: dict[str, Any]
) -> Rows:
    """Write the fast-scan relation of the files ``local`` to the Parquet file ``tmp``, each
    file's rows from the scan that decides it (:func:`_tiers`); returns ``(file, lines, flagged
    lines, matches of match)`` per file."""

    def copy(relation: str, more: dict[str, Any]) -> Rows:
        # rows in any order (they carry their file): the writers need not wait for each other
        con.execute("SET preserve_insertion_order = false")
        try:
            # with MATCH_COLUMN, the match of the query that builds the batch, computed in the
            # same pass: reading back three small columns gives its count (later queries
            # select the columns they read, never this one)
            con.execute(
                f"COPY (SELECT *, COALESCE({match}, false) AS {MATCH_COLUMN} FROM ({relation})) "
                f"TO '{_sql_path(tmp)}' (FORMAT parquet, COMPRESSION snappy)",
                {"files": local} | more | params,
            )
        except BaseException:
            tmp.unlink(missing_ok=True)  # a part written before the failure
            raise
        finally:
            con.execute("RESET preserve_insertion_order")
        return list(
            con.execute(
                "SELECT file, count(*), count(*) FILTER (WHERE bad), "
                f"count(*) FILTER (WHERE {MATCH_COLUMN}) FROM read_parquet($b) GROUP BY file",
                {"b": str(tmp)},
            ).fetchall()
        )

    def again(rows: Rows, flagged: list[int], relation: str) -> Rows:
        # the rows so far, but those of the flagged files, which `relation` reads again
        previous = tmp.with_name(tmp.name.removesuffix(".tmp") + ".strict.tmp")  # collected
        tmp.replace(previous)
        try:
            return copy(
                f"SELECT * EXCLUDE ({MATCH_COLUMN}) FROM read_parquet('{_sql_path(previous)}') "
                "WHERE NOT list_contains($flagged, file) "
                f"UNION ALL BY NAME SELECT * FROM ({relation})",
                {"flagged": flagged, "subset": [local[i] for i in flagged]},
            )
        except BaseException:
            previous.replace(tmp)  # the rows so far stay
            raise
        finally:
            previous.unlink(missing_ok=True)

    return _tiers(paths, local, copy, again)


def _part(name: str) -> str:
    return RecordFile(name, "", 0).partition


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
    require_duckdb()  # with no file in the window too: the answer must not depend on it
    if not files:
        return 0
    node = where_lang.parse(where) if where else None
    con = connect()
    import duckdb

    sanitize: frozenset[str] = frozenset()
    try:
        while True:
            attempt = ScanStats()
            params: dict[str, Any] = {}
            match = action_conds(ColumnShape(), agent, since, until, node, tool, params)
            try:
                with _Rows(
                    con,
                    location,
                    files,
                    attempt,
                    kinds="actions",
                    paths=_paths(node),
                    cache=cache,
                    sanitize=sanitize,
                    match=(match, params),
                ) as rows:
                    if rows.cache is None:  # JSONL read directly: lines and matches in one pass
                        count = rows.count_direct(match, params)
                    else:  # what was built now was counted then; the rest from the cache
                        count = rows.fresh_matches
                        old = [b for b in rows.selects if b not in rows.fresh]
                        if old:
                            union = " UNION ALL ".join(rows.selects[b] for b in old)
                            row = con.execute(
                                f"SELECT count(*) FROM ({union}) WHERE {match}",
                                {rows.batch_params[b]: b for b in old} | params,
                            ).fetchone()
                            count += int(row[0]) if row else 0
            except _NotUtf8 as exc:
                sanitize |= exc.names
                continue
            except duckdb.Error as exc:
                sanitize = _refused(location, files, sanitize, exc)
                continue
            stats.merge(attempt)
            return count
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
    counted in ``stats``.

    The fast scan (or the cache) finds the matching rows; only the files holding the first
    ``limit`` of them (by time) are then read as text for the records themselves; a negative
    ``limit`` is refused by :func:`agentctl.trace.query.iter_actions`, the only caller."""
    require_duckdb()  # with no file in the window too: the answer must not depend on it
    if not files:
        return
    node = where_lang.parse(where) if where else None
    con = connect()
    import duckdb

    sanitize: frozenset[str] = frozenset()
    try:
        while True:
            attempt = ScanStats()
            try:
                wanted = _holders(
                    con, location, files, agent, since, until, node, tool, attempt, cache,
                    sanitize,
                )  # fmt: skip
            except _NotUtf8 as exc:
                sanitize |= exc.names
                con.execute("DROP TABLE IF EXISTS scan")
                continue
            except duckdb.Error as exc:
                sanitize = _refused(location, files, sanitize, exc)
                con.execute("DROP TABLE IF EXISTS scan")
                continue
            break
        stats.merge(attempt)
        if limit is None:
            chosen = [f for f in files if f.name in wanted(None)]
            if chosen:
                yield from _listing(
                    con, location, chosen, agent, since, until, node, tool, stats, None, sanitize
                )
            return
        # a matched row the models reject is counted, not shown: read further until `limit`
        # valid rows are out (or there are no more matches)
        want = limit
        while True:
            chosen = [f for f in files if f.name in wanted(want)]
            trial = ScanStats()
            got = (
                list(
                    _listing(
                        con,
                        location,
                        chosen,
                        agent,
                        since,
                        until,
                        node,
                        tool,
                        trial,
                        want,
                        sanitize,
                    )
                )
                if chosen
                else []
            )
            if len(got) >= limit or len(got) + trial.bad_total < want:
                break
            want += limit - len(got)
        stats.merge(trial)
        yield from got[:limit]
    finally:
        con.close()


def _holders(
    con: Any,
    location: Location,
    files: list[RecordFile],
    agent: str,
    since: datetime,
    until: datetime,
    node: where_lang.Node | None,
    tool: str | None,
    stats: ScanStats,
    cache: PartitionCache | bool | None,
    sanitize: frozenset[str],
) -> Callable[[int | None], set[str]]:
    """Scans once; returns ``pick(n)``: names of the files holding the first ``n`` matches (all
    matches for None)."""
    import duckdb

    params: dict[str, Any] = {}
    with _Rows(
        con,
        location,
        files,
        stats,
        kinds="actions",
        paths=_paths(node),
        cache=cache,
        sanitize=sanitize,
    ) as rows:
        match = action_conds(ColumnShape(), agent, since, until, node, tool, params)
        if rows.cache is None:  # one pass over the JSONL: the report and the hits
            con.execute(
                f"CREATE TEMP TABLE scan AS SELECT batch, file, bad, ts, "
                f"COALESCE({match}, false) AS hit FROM {rows.relation}",
                rows.params | params,
            )
            flagged = [
                int(f)
                for (f,) in con.execute("SELECT DISTINCT file FROM scan WHERE bad").fetchall()
            ]
            if flagged and not _collides(rows.paths):
                # the exact scan decides those files' lines (see _tiers)
                try:
                    con.execute(
                        f"CREATE TEMP TABLE exact_scan AS SELECT '' AS batch, file, bad, ts, "
                        f"COALESCE({match}, false) AS hit "
                        f"FROM ({_fast_from_text(rows.paths, '$subset')})",
                        rows.params
                        | params
                        | {"subset": [rows.params["files"][i] for i in flagged]},
                    )
                except duckdb.Error:  # a line over MAX_LINE: the fast rows stay
                    pass
                else:
                    con.execute(
                        "DELETE FROM scan WHERE list_contains($flagged, file)",
                        {"flagged": flagged},
                    )
                    con.execute("INSERT INTO scan SELECT * FROM exact_scan")
                    con.execute("DROP TABLE exact_scan")
            rows.tally(
                con.execute(
                    "SELECT file, count(*), count(*) FILTER (WHERE bad), 0 FROM scan GROUP BY file"
                ).fetchall()
            )
        else:
            con.execute(
                f"CREATE TEMP TABLE scan AS SELECT batch, file, ts, true AS hit "
                f"FROM {rows.relation} WHERE {match}",
                rows.params | params,
            )
    names = dict(rows.names)

    def pick(limit: int | None) -> set[str]:
        bound, last = "", {}
        if limit is not None:
            # every row among the first `limit` by (ts, action_id) has ts <= the limit-th ts
            row = con.execute(
                f"SELECT max(ts) FROM (SELECT ts FROM scan WHERE hit ORDER BY ts "
                f"LIMIT {int(limit)})"
            ).fetchone()
            bound, last = " AND ts <= $last", {"last": row[0] if row else None}
        holders = con.execute(
            f"SELECT DISTINCT batch, file FROM scan WHERE hit{bound}", last
        ).fetchall()
        return {names[b][int(i)] for b, i in holders}

    return pick


def _exact(
    con: Any,
    location: Location,
    files: list[RecordFile],
    sanitize: frozenset[str],
    run: Callable[[list[str], ScanStats, bool], None],
) -> ScanStats:
    """``run(paths, stats, from_table)`` over local copies of ``files``; files DuckDB refuses as
    not UTF-8 or damaged gzip are read again from sanitised copies; when DuckDB still refuses
    them (a line longer than MAX_LINE), their lines are read by python into the table
    ``exact_lines`` and ``run`` is called with ``from_table``. Returns the stats of the attempt
    that succeeded."""
    import duckdb

    while True:
        attempt = ScanStats()
        with _Files(location, files, attempt, sanitize) as paths:
            try:
                run(paths, attempt, False)
                return attempt
            except duckdb.Error as exc:
                try:
                    sanitize = _refused(location, files, sanitize, exc)
                    continue
                except duckdb.Error:
                    pass
                names: list[str] = []
                lines: list[str] = []
                for path in paths:
                    with open(path, "rb") as raw, open_text(path, raw) as text:
                        for line in readable_lines(path, text, ScanStats()):
                            names.append(path)
                            lines.append(line.rstrip("\n").removesuffix("\r"))
                con.execute(
                    "CREATE OR REPLACE TEMP TABLE exact_lines AS "
                    "SELECT unnest($names) AS filename, unnest($lines) AS line",
                    {"names": names, "lines": lines},
                )
                con.execute("SET memory_limit = '2GB'")
                try:
                    run(paths, attempt, True)
                finally:
                    con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
                return attempt


def _refused(
    location: Location, files: list[RecordFile], sanitize: frozenset[str], error: Exception
) -> frozenset[str]:
    """After DuckDB failed over ``files``: ``sanitize`` with the files it refuses that python
    reads (not UTF-8; a gzip stream cut short, empty or not gzip), to be read from python's
    copies. Re-raises the error when there are none new (it is not about the files)."""
    from agentctl.trace.scan import GZIP_DAMAGE, open_text

    new = set()
    for file in files:
        if file.name in sanitize or file.kind == "otlp":
            continue
        if file.name.endswith(".gz") and file.size == 0:
            new.add(file.name)
            continue
        try:
            with location.open(file) as body, open_text(file.name, body) as text:
                text.reconfigure(errors="strict")  # type: ignore[attr-defined]
                while text.read(1 << 24):
                    pass
        except (UnicodeDecodeError, *GZIP_DAMAGE):
            new.add(file.name)
    if not new:
        raise error
    return sanitize | new


def _listing(
    con: Any,
    location: Location,
    files: list[RecordFile],
    agent: str,
    since: datetime,
    until: datetime,
    node: where_lang.Node | None,
    tool: str | None,
    stats: ScanStats,
    limit: int | None,
    sanitize: frozenset[str],
) -> Iterator[ActionRecord]:
    """The matching records of ``files`` read as text (the exact scan), validated. Their bad
    lines were counted already: only validation failures are added to ``stats``."""
    extra = _paths(node)
    shape = DirectShape(extra)
    params: dict[str, Any] = {}
    match = action_conds(shape, agent, since, until, node, tool, params)
    names: dict[str, str] = {}

    def run(paths: list[str], _: ScanStats, from_table: bool) -> None:
        # materialised inside DuckDB: a file it refuses fails here, before any record is out
        names.update(zip(paths, (f.name for f in files), strict=True))
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE listing AS {_classified(extra, False, from_table)} "
            f"SELECT file, line, ts, {shape.col('action_id')} AS action_id FROM c WHERE {match} "
            "ORDER BY ts, action_id" + (f" LIMIT {int(limit)}" if limit is not None else ""),
            params | {"files": paths},
        )

    _exact(con, location, files, sanitize, run)
    cursor = con.execute("SELECT file, line FROM listing ORDER BY ts, action_id")
    while batch := cursor.fetchmany(2048):
        for file, line in batch:
            name = names.get(file, file)
            # line numbers of rejected rows: temporary copies are gone, local files are not
            record = _validate(file if os.path.exists(file) else name, name, line, stats)
            if record is not None:
                yield record


def _validate(path: str, name: str, line: str, stats: ScanStats) -> ActionRecord | None:
    from pydantic import ValidationError

    from agentctl.trace.records import ActionRecord

    try:
        return ActionRecord.model_validate(loads_record(line))
    except ValueError as exc:  # pydantic's ValidationError is one too
        # a line DuckDB's parser took and python's json does not is not JSON, as the python
        # engine says (a trailing comma)
        reason = "invalid" if isinstance(exc, ValidationError) else "not_json"
        number = _line_number(path, line) if os.path.exists(path) else 0
        stats.add_bad(name, number, reason, str(exc).splitlines()[0])
        return None


Predicate = Callable[[Shape, dict[str, Any]], "str | list[str]"]


def find_lines(
    location: Location,
    files: list[RecordFile],
    predicate: Predicate,
    *,
    kinds: str,
    stats: ScanStats,
    needle: str | None = None,
) -> list[str]:
    """Raw lines of the valid records matching ``predicate(shape, params)`` (SQL over the
    exact scan's fields and ``ts``), in time order.

    With a ``needle`` (a substring every matching line holds) only the lines holding it are
    parsed and classified, and a bad one among them is counted; the others are not read as
    records, so ``stats`` counts the files and no lines. Without, every line is classified and
    counted. Lookups never use the cache (the substring filter over the JSONL is about as fast
    as a cached column); ``kinds`` is kept for the callers."""
    del kinds
    require_duckdb()  # with no file in the window too: the answer must not depend on it
    if not files:
        return []
    con = connect()
    rows: list[tuple[Any, ...]] = []

    def run(paths: list[str], attempt: ScanStats, from_table: bool) -> None:
        attempt.files += len(paths)
        params: dict[str, Any] = {"files": paths}
        if needle is not None:
            params["needle"] = needle
            relation = _classified(prefilter=True, from_table=from_table)
        else:
            relation = _classified(from_table=from_table)
            _exact_stats(con, paths, [f.name for f in files], attempt)
        preds = predicate(DirectShape([]), params)
        sql = preds if isinstance(preds, str) else "(" + ") OR (".join(preds) + ")"
        rows[:] = con.execute(
            f"{relation} SELECT line, epoch_us(ts) FROM c WHERE bad IS NULL AND ({sql})",
            params,
        ).fetchall()

    try:
        stats.merge(_exact(con, location, files, frozenset(), run))
    finally:
        con.close()
    rows.sort(key=lambda r: r[1])
    return [str(r[0]) for r in rows]


PLAIN_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{4,200}$")


def needle_for(ident: str) -> str | None:
    """A substring every line holding ``ident`` as a JSON string value contains: ``"ident"``
    (JSON writers do not escape these characters). None when ``ident`` has others."""
    return f'"{ident}"' if PLAIN_ID.match(ident) else None
