"""A local columnar cache of day partitions, so repeated queries do not re-parse JSONL.

The first DuckDB query over a day partition parses its JSONL once (as it must, to classify
every line) and keeps, in the same pass, a few columns per line in Parquet: the partition, the
file, whether the line is a valid record, the timestamp, the record type (as a number), and
the JSON text of ``agent``, ``tool`` and of every ``--where`` path asked so far. It does not
keep the line itself: a listing re-reads the few source files that hold its results. The cache
is derived data, never the record of truth:

- each cached partition has a manifest listing the source files with their size, mtime, ctime
  and inode (S3: ETag); any change (a writer appended, a file appeared, a file was replaced by
  one of the same size and mtime: its ctime is new) rebuilds that partition on next read;
- the manifest also keeps the partition's scan statistics (lines, bad lines by reason, the first
  locations), so bad input is still reported on every query, not only on the first;
- a query with a ``--where`` path the manifest does not list rebuilds the partition once with that
  path added (the parse it needs anyway), keeping the paths it had;
- partitions built by one query share one Parquet file (a *batch*; each row names its source
  file, and so its partition): one write, not one per day; a batch no manifest refers to any
  more is deleted;
- it lives under ``$AGENTCTL_TRACE_CACHE`` (default ``$XDG_CACHE_HOME/agentctl/trace``, i.e.
  ``~/.cache/agentctl/trace``); ``AGENTCTL_TRACE_CACHE=off`` disables it; deleting the directory
  is always safe.

Writes are atomic (temporary file, then rename; the batch before the manifests that name it);
two processes building the same partition both produce a correct batch, and the last manifest
written wins.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from agentctl.trace.scan import BadLine, ScanStats
from agentctl.trace.source import RecordFile

# 5: record_type holds the type's number (4: record_type, agent and tool hold JSON text; 3:
# their decoded values)
CACHE_VERSION = 5
ENV = "AGENTCTL_TRACE_CACHE"
LOCK = ".lock"  # under a location's cache directory: see PartitionCache.reading
MAX_PATHS = 32  # --where paths kept per partition; beyond that a query reads the JSONL


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
    base: Path  # the location's cache directory (batches live under it)
    partition: str
    manifest: Path


@dataclass(frozen=True)
class Cached:
    """A current cache entry: the partition's rows are those of ``part`` in ``batch``; ``file``
    values index ``names``."""

    stats: ScanStats
    batch: Path
    names: list[str]
    paths: list[str]


def signature(files: list[RecordFile]) -> list[list[Any]]:
    return [[f.name, f.size, f.stamp] for f in sorted(files, key=lambda f: f.name)]


class PartitionCache:
    """Cached columns per (location, partition, kinds)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def entry(self, location: str, partition: str, kinds: str) -> Entry:
        digest = hashlib.sha256(f"{location}\0{kinds}".encode()).hexdigest()[:20]
        base = self.root / digest
        return Entry(base, partition, base / partition / "manifest.json")

    def lookup(self, entry: Entry, files: list[RecordFile]) -> Cached | None:
        """The partition's cache if it is current for exactly these files, else None."""
        try:
            manifest = json.loads(entry.manifest.read_text())
        except (OSError, ValueError):
            return None
        if manifest.get("version") != CACHE_VERSION or manifest.get("files") != signature(files):
            return None
        batch = entry.base / "batches" / str(manifest["batch"])
        if not batch.exists():
            return None
        return Cached(
            stats_from(manifest["stats"]),
            batch,
            [str(n) for n in manifest["names"]],
            [str(p) for p in manifest["paths"]],
        )

    def new_batch(self, entry: Entry) -> tuple[Path, Path]:
        """(temporary path, final path) for a new batch file next to ``entry``."""
        folder = entry.base / "batches"
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{uuid.uuid4().hex}.parquet"
        return folder / f".{final.name}.{os.getpid()}.tmp", final

    def store(
        self,
        entry: Entry,
        files: list[RecordFile],
        stats: ScanStats,
        batch: Path,
        names: list[str],
        paths: list[str],
    ) -> None:
        """Record the manifest after the batch file was renamed into place."""
        entry.manifest.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "version": CACHE_VERSION,
            "files": signature(files),
            "stats": stats.to_dict(),
            "batch": batch.name,
            "names": names,
            "paths": paths,
        }
        tmp = entry.manifest.with_name(f".{entry.manifest.name}.{os.getpid()}")
        tmp.write_text(json.dumps(doc))
        tmp.replace(entry.manifest)
        # cache version 1 kept each partition's rows (with their lines) next to its manifest
        (entry.manifest.parent / "records.parquet").unlink(missing_ok=True)

    def reading(self, base: Path) -> IO[bytes]:
        """Hold a shared lock on ``base`` (a query between its lookups and its last read of the
        batches they name): :meth:`collect` deletes nothing while one is held. Close the
        returned file to release it."""
        import fcntl

        base.mkdir(parents=True, exist_ok=True)
        lock = open(base / LOCK, "ab")  # noqa: SIM115 - held until the caller closes it
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_SH)
        except OSError:
            lock.close()
            raise
        return lock

    def collect(self, base: Path) -> None:
        """Delete the batches of ``base`` no manifest refers to (their partitions were rebuilt),
        and temporary files a killed process left (older than an hour). Only when no query
        holds :meth:`reading` (else it is left for a later query); a batch younger than a
        minute is left alone too."""
        import fcntl

        folder = base / "batches"
        if not folder.is_dir():
            return
        try:
            lock = open(base / LOCK, "ab")  # noqa: SIM115 - closed below
        except OSError:
            return
        with lock:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return  # a query is reading: next time
            self._collect(base, folder)

    def _collect(self, base: Path, folder: Path) -> None:
        used = set()
        for manifest in base.glob("*/manifest.json"):
            try:
                used.add(str(json.loads(manifest.read_text()).get("batch")))
            except (OSError, ValueError):
                continue
        now = time.time()
        leftovers = [*folder.glob(".*.tmp"), *base.glob("*/.manifest.json.*")]
        for path, age in [
            *((b, 60) for b in folder.glob("*.parquet")),
            *((t, 3600) for t in leftovers),
        ]:
            try:
                young = now - path.stat().st_mtime < age
            except OSError:
                continue
            if path.name not in used and not young:
                path.unlink(missing_ok=True)


def stats_from(doc: dict[str, Any]) -> ScanStats:
    stats = ScanStats(files=int(doc["files"]), lines=int(doc["lines"]))
    stats.skipped = int(doc.get("skipped_spans", 0))
    stats.bad.update({k: int(v) for k, v in doc.get("bad_by_reason", {}).items()})
    stats.examples = [
        BadLine(e["file"], int(e["line"]), e["reason"], e["detail"]) for e in doc["examples"]
    ]
    return stats
