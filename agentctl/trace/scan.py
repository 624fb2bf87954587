"""Reading record lines one by one, counting what cannot be read instead of crashing or hiding it.

A corrupt line, an unknown ``schema_version`` or a record missing required fields is counted in
:class:`ScanStats` under a reason, with the first few locations kept as examples; the scan goes on.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from agentctl.trace.schema import SUPPORTED_VERSIONS

MAX_EXAMPLES = 5
# not_json | not_object | unknown_version | unknown_record_type | invalid | truncated_gzip
BadReason = str


@dataclass
class BadLine:
    file: str
    line: int
    reason: BadReason
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "reason": self.reason, "detail": self.detail}


@dataclass
class ScanStats:
    """What a scan read, and what it could not."""

    files: int = 0
    lines: int = 0
    skipped: int = 0  # OTLP spans that are not GenAI decision records (HTTP, DB, ...)
    bad: Counter[str] = field(default_factory=Counter)
    examples: list[BadLine] = field(default_factory=list)

    @property
    def bad_total(self) -> int:
        return sum(self.bad.values())

    def add_bad(self, file: str, line: int, reason: BadReason, detail: str) -> None:
        self.bad[reason] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(BadLine(file, line, reason, detail[:200]))

    def merge(self, other: ScanStats) -> None:
        self.files += other.files
        self.lines += other.lines
        self.skipped += other.skipped
        self.bad.update(other.bad)
        room = MAX_EXAMPLES - len(self.examples)
        self.examples.extend(other.examples[: max(room, 0)])

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "lines": self.lines,
            "skipped_spans": self.skipped,
            "bad": self.bad_total,
            "bad_by_reason": dict(sorted(self.bad.items())),
            "examples": [e.to_dict() for e in self.examples],
        }


def open_text(name: str, raw: IO[bytes]) -> IO[str]:
    """Text view of a (possibly gzip) byte stream; a UTF-8 byte order mark at its start (some
    Windows tools write one) is dropped, as DuckDB's readers drop it."""
    stream: IO[bytes] = gzip.GzipFile(fileobj=raw) if name.endswith(".gz") else raw  # type: ignore[assignment]
    return io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace")


# What reading a damaged gzip stream raises: a member cut short (a writer that crashed or is
# still appending), bytes that are not gzip at all, a corrupt deflate stream.
GZIP_DAMAGE = (EOFError, gzip.BadGzipFile, zlib.error)


def readable_lines(name: str, lines: Iterable[str], stats: ScanStats) -> Iterator[str]:
    """``lines``, stopping at a damaged gzip stream: what came before is kept, the rest of the
    file is one bad line (``truncated_gzip``) at the place it broke, never a crash."""
    iterator = iter(lines)
    number = 0
    while True:
        try:
            line = next(iterator)
        except StopIteration:
            return
        except GZIP_DAMAGE as exc:
            stats.lines += 1
            stats.add_bad(
                name, number + 1, "truncated_gzip", f"{type(exc).__name__}: {exc}; rest unread"
            )
            return
        number += 1
        yield line


def _first_wins(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):  # a key given twice: its first value, as DuckDB's readers take
        out = {}
        for key, value in pairs:
            out.setdefault(key, value)
    return out


def loads_record(line: str) -> Any:
    """One line of JSON as every engine reads it: a key given twice in an object keeps its
    first value (Python's json would keep the last, DuckDB's readers keep the first), and a
    ``\\u`` escape of half a UTF-16 surrogate pair alone (``"\\ud800"``) is not JSON (Python's
    json would take it, DuckDB's readers refuse the line: such text is no Unicode string)."""
    data = json.loads(line, object_pairs_hook=_first_wins)
    if "\\u" in line and _SURROGATE_ESCAPE.search(line) is not None:
        try:  # pairs were joined into one character by the parser; a half left alone was not
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("a \\u escape of a lone UTF-16 surrogate (not Unicode text)") from None
    return data


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def decode_lines(
    name: str, lines: Iterable[str], stats: ScanStats
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, JSON object) for each readable line; count the others."""
    for number, line in enumerate(readable_lines(name, lines, stats), start=1):
        if not line.strip():
            continue
        stats.lines += 1
        try:
            data = loads_record(line)
        except ValueError as exc:
            stats.add_bad(name, number, "not_json", str(exc))
            continue
        if not isinstance(data, dict):
            stats.add_bad(name, number, "not_object", type(data).__name__)
            continue
        yield number, data


def classify(data: dict[str, Any]) -> BadReason | None:
    """A cheap pre-check before full validation: the reason this object is not a record."""
    version = data.get("schema_version")
    if type(version) is not int or version not in SUPPORTED_VERSIONS:
        return "unknown_version"
    if data.get("record_type") not in ("action", "model_call", "retrieval", "input"):
        return "unknown_record_type"
    return None


def validate(name: str, number: int, data: dict[str, Any], stats: ScanStats) -> Any | None:
    """The record model for ``data``, or None (counted) if it is not a valid record."""
    reason = classify(data)
    if reason is not None:
        stats.add_bad(
            name, number, reason, repr(data.get("schema_version", data.get("record_type")))
        )
        return None
    # the models (pydantic) are imported by the first record validated, not by a DuckDB count
    from pydantic import ValidationError

    from agentctl.trace.records import parse_record

    try:
        return parse_record(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        stats.add_bad(name, number, "invalid", f"{where}: {first['msg']}")
        return None
