"""A local columnar cache of day partitions, so repeated queries do not re-parse JSONL.

The first DuckDB query over a day partition parses its JSONL once (as it must, to classify
every line) and keeps the valid records as a Parquet file: the extracted fields, the timestamp
and the original line. The cache is derived data, never the record of truth:

- each cached partition has a manifest listing the source files with their size and mtime (S3:
  ETag); any change (a writer appended, a file appeared) rebuilds that partition on next read;
- the manifest also keeps the partition's scan statistics (lines, bad lines by reason, the first
  locations), so bad input is still reported on every query, not only on the first;
- it lives under ``$AGENTCTL_TRACE_CACHE`` (default ``$XDG_CACHE_HOME/agentctl/trace``, i.e.
  ``~/.cache/agentctl/trace``); ``AGENTCTL_TRACE_CACHE=off`` disables it; deleting the directory
  is always safe.

Writes are atomic (temporary file, then rename); two processes building the same partition
both produce the same content, and the last rename wins.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentctl.trace.scan import BadLine, ScanStats
from agentctl.trace.source import RecordFile

CACHE_VERSION = 1
ENV = "AGENTCTL_TRACE_CACHE"


def default_root() -> Path | None:
    """The cache directory, or None when disabled."""
    value = os.environ.get(ENV)
    if value is not None and value.strip().lower() in ("off", "0", "no", "false", ""):
        return None
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "agentctl" / "trace"


@dataclass(frozen=True)
class Entry:
    parquet: Path
    manifest: Path


def signature(files: list[RecordFile]) -> list[list[Any]]:
    return [[f.name, f.size, f.stamp] for f in sorted(files, key=lambda f: f.name)]


class PartitionCache:
    """Cached Parquet per (location, partition, kinds)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def entry(self, location: str, partition: str, kinds: str) -> Entry:
        digest = hashlib.sha256(f"{location}\0{kinds}".encode()).hexdigest()[:20]
        base = self.root / digest / partition
        return Entry(base / "records.parquet", base / "manifest.json")

    def lookup(self, entry: Entry, files: list[RecordFile]) -> ScanStats | None:
        """The partition's stats if the cache is current for exactly these files, else None."""
        try:
            manifest = json.loads(entry.manifest.read_text())
        except (OSError, ValueError):
            return None
        if (
            manifest.get("version") != CACHE_VERSION
            or manifest.get("files") != signature(files)
            or not entry.parquet.exists()
        ):
            return None
        return stats_from(manifest["stats"])

    def store(self, entry: Entry, files: list[RecordFile], stats: ScanStats) -> None:
        """Record the manifest after the Parquet file was renamed into place."""
        entry.manifest.parent.mkdir(parents=True, exist_ok=True)
        doc = {"version": CACHE_VERSION, "files": signature(files), "stats": stats.to_dict()}
        tmp = entry.manifest.with_name(f".{entry.manifest.name}.{os.getpid()}")
        tmp.write_text(json.dumps(doc))
        tmp.replace(entry.manifest)


def stats_from(doc: dict[str, Any]) -> ScanStats:
    stats = ScanStats(files=int(doc["files"]), lines=int(doc["lines"]))
    stats.skipped = int(doc.get("skipped_spans", 0))
    stats.bad.update({k: int(v) for k, v in doc.get("bad_by_reason", {}).items()})
    stats.examples = [
        BadLine(e["file"], int(e["line"]), e["reason"], e["detail"]) for e in doc["examples"]
    ]
    return stats
