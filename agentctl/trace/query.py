"""Reading action records and decision traces: the library API the CLI and rollback call.

Stable signatures::

    iter_actions(source: str, agent: str, since: datetime, until: datetime,
                 where: str | None = None, tool: str | None = None, *,
                 stats: ScanStats | None = None, s3_client=None, engine: str = "auto",
                 limit: int | None = None) -> Iterator[ActionRecord]

      Every valid action record of ``agent`` with ``since <= ts < until`` (UTC; naive datetimes
      are taken as UTC), optionally only ``tool`` and only those matching ``where`` (the
      ``--where`` language of :mod:`agentctl.trace.where`), in (ts, action_id) order.
      ``source`` is the audit location: a directory or ``s3://bucket/prefix`` (then pass
      ``s3_client``). Bad lines never stop the scan: pass a ``ScanStats`` to get them counted.
      ``engine``: ``duckdb`` (filters inside DuckDB, partition-pruned file list), ``python``
      (a plain line scan), ``auto`` (duckdb when installed). ``limit``: stop after that many.

Rollback (issue 5) keys compensation on ``ActionRecord.effects`` and ``idempotency_key``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agentctl.errors import BadInputError
from agentctl.trace import where as where_lang
from agentctl.trace.scan import ScanStats, decode_lines, open_text, readable_lines, validate
from agentctl.trace.source import Location, RecordFile, open_location

if TYPE_CHECKING:  # the models (pydantic): imported where records are read in Python
    from agentctl.trace.records import ActionRecord

ACTION_KINDS = frozenset({"actions", "mixed", "otlp"})
ALL_KINDS = frozenset({"actions", "decisions", "mixed", "otlp"})


def utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def check_window(since: datetime, until: datetime) -> tuple[datetime, datetime]:
    since, until = utc(since), utc(until)
    if until <= since:
        raise BadInputError(
            f"--until ({until.isoformat()}) must be after --since ({since.isoformat()})"
        )
    return since, until


def check_limit(limit: int | None) -> None:
    if limit is not None and limit < 0:
        raise BadInputError(f"--limit must be 0 or more, not {limit}")


def iter_actions(
    source: str,
    agent: str,
    since: datetime,
    until: datetime,
    where: str | None = None,
    tool: str | None = None,
    *,
    stats: ScanStats | None = None,
    s3_client: Any | None = None,
    engine: str = "auto",
    limit: int | None = None,
) -> Iterator[ActionRecord]:
    """See the module docstring."""
    since, until = check_window(since, until)
    check_limit(limit)
    match = where_lang.predicate(where)  # parse now: a bad --where fails before any I/O
    stats = stats if stats is not None else ScanStats()
    location = open_location(source, s3_client=s3_client)
    files = location.files(since, until, ACTION_KINDS)
    if engine not in ("auto", "duckdb", "python"):
        raise BadInputError(f"unknown engine {engine!r}", hint="use duckdb or python")
    if engine == "duckdb" or (engine == "auto" and duckdb_usable(source)):
        from agentctl.trace.duck import iter_actions as duck_iter_actions

        yield from duck_iter_actions(
            location, files, agent, since, until, where, tool, stats=stats, limit=limit
        )
        return
    from agentctl.trace.records import ActionRecord

    found: list[ActionRecord] = []
    for file in files:
        for record, data in scan_file_raw(location, file, stats):
            if not isinstance(record, ActionRecord) or record.agent != agent:
                continue
            if not since <= record.ts < until or (tool and record.tool != tool):
                continue
            if where and not match(data):
                continue
            found.append(record)
    found.sort(key=lambda r: (r.ts, r.action_id))
    yield from found[:limit] if limit is not None else found


# the oldest DuckDB whose readers the engine was checked against (older ones misread, e.g.,
# old-Mac line ends and a half-written last line); pyproject.toml asks for the same
DUCKDB_MIN = (2, 0, 1)


def duckdb_problem() -> str | None:
    """Why the DuckDB engine cannot run here, or None when it can."""
    try:
        import duckdb
    except ImportError:
        return "DuckDB is not installed"
    text = getattr(duckdb, "__version__", None)
    if not isinstance(text, str):  # e.g. a directory an uninstall left behind
        return "the duckdb module found has no version (a broken install?)"
    if not _at_least(text, DUCKDB_MIN):
        need = ".".join(map(str, DUCKDB_MIN))
        return f"DuckDB {text} is installed; the engine needs {need} or later"
    return None


_VERSION = re.compile(r"v?(\d{1,9})(?:\.(\d{1,9}))?(?:\.(\d{1,9}))?(.*)")


def _at_least(text: str, least: tuple[int, int, int]) -> bool:
    """Whether the version ``text`` is ``least`` or later. A pre-release (``2.0.1rc1``,
    ``2.0.1.dev5``) comes before its release, as in PEP 440; a post-release, a fourth
    number or a local version (``2.0.1.post1``, ``2.0.1-1``, ``2.0.1.1``, ``2.0.1+local``) does
    not. Text that is no version is not."""
    m = _VERSION.fullmatch(text.strip().lower())
    if m is None:
        return False
    numbers = tuple(int(g or 0) for g in m.group(1, 2, 3))
    rest = m.group(4)
    tail = rest.lstrip(".-_")
    if rest == "" or rest.startswith("+"):
        released = True
    elif tail.startswith(("rc", "a", "b", "c", "dev", "pre")):  # alpha, beta, preview too
        released = False
    else:  # 2.0.1.1, 2.0.1-1, 2.0.1.post1, 2.0.1r1
        released = tail[:1].isdigit() or tail.startswith(("post", "r"))
    return (numbers, released) >= (least, True)


def duckdb_usable(source: str) -> bool:
    """``--engine auto`` reads with DuckDB when it can, else with python."""
    return duckdb_problem() is None


def require_duckdb() -> None:
    """``--engine duckdb`` where it cannot run: bad input, said plainly."""
    if (problem := duckdb_problem()) is not None:
        raise BadInputError(
            f"--engine duckdb: {problem}",
            hint="pip install 'agentctl[trace]', or use --engine python (or auto)",
        )


def scan_file(location: Location, file: RecordFile, stats: ScanStats) -> Iterator[Any]:
    """Every valid record in one file (JSONL, gzip JSONL or OTLP JSON); bad ones counted."""
    for record, _ in scan_file_raw(location, file, stats):
        yield record


def scan_file_raw(
    location: Location, file: RecordFile, stats: ScanStats
) -> Iterator[tuple[Any, dict[str, Any]]]:
    """(record, the object it was read from): ``--where`` sees records as they were written
    (as DuckDB does), not the model's normalised form with its defaults."""
    stats.files += 1
    if file.kind == "otlp":
        from agentctl.trace.otlp import normalise

        with location.open(file) as raw, open_text(file.name, raw) as text:
            content = "".join(readable_lines(file.name, text, stats))
        records = normalise(file.name, content, stats)
        stats.lines += len(records)
        for data in records:
            record = validate(file.name, 0, data, stats)
            if record is not None:
                yield record, data
        return
    with location.open(file) as raw, open_text(file.name, raw) as text:
        for number, data in decode_lines(file.name, text, stats):
            record = validate(file.name, number, data, stats)
            if record is not None:
                yield record, data
