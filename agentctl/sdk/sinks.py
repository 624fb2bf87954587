"""Where the SDK writes records, and the buffered writer in front of them. Standard library only.

Failure policy (the agent must never block or break because of its audit trail):

- ``Writer.submit`` appends to an in-memory buffer and returns: no I/O on the agent's thread;
- a background thread flushes every ``flush_interval`` seconds or ``batch_size`` records;
- when the sink raises, the batch stays at the head of the buffer and is retried with backoff
  (doubling up to ``max_backoff``); nothing already buffered is lost while the sink is down;
- the buffer is bounded (``max_buffer`` records): when it is full, new records are **dropped and
  counted** (``stats.dropped``, and a warning on the ``agentctl.sdk`` logger at most once per
  ``warn_every`` seconds) rather than growing without limit or blocking the agent;
- ``close()`` (also at interpreter exit) makes one last flush attempt.
"""

from __future__ import annotations

import atexit
import contextlib
import gzip
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from agentctl.sdk.layout import ACTIONS_PREFIX, DECISIONS_PREFIX

log = logging.getLogger("agentctl.sdk")


class Sink(Protocol):
    def write(self, records: list[dict[str, Any]]) -> None: ...


def line(record: dict[str, Any]) -> bytes:
    """One JSON line in UTF-8, newline included (see :func:`json_bytes`)."""
    return json_bytes(record, separators=(",", ":")) + b"\n"


def json_bytes(value: Any, **options: Any) -> bytes:
    """``value`` as JSON in UTF-8; a value JSON cannot hold is written as its string. One
    that fails even so (it refers to itself, a key is not a string, a lone surrogate, nesting
    too deep, a ``str()`` that fails) is written with those parts made safe: never dropped,
    and never failing the batch, which would hold back every record after it."""
    dump = lambda v: json.dumps(v, ensure_ascii=False, default=str, **options)  # noqa: E731
    try:
        return dump(value).encode("utf-8")
    except Exception:  # anything a value's own __str__ or JSON may raise
        return dump(_json_safe(value, set(), 0)).encode("utf-8")


def _json_safe(value: Any, seen: set[int], depth: int) -> Any:
    """``value`` made of JSON's own types only, which json.dumps cannot fail on."""
    if isinstance(value, str):
        return str.encode(value, "utf-8", "replace").decode("utf-8")  # lone surrogate -> "?"
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, float):
        return float(value)
    if isinstance(value, int):
        try:
            return int(str(int(value)))  # past Python's 4300 digits a string cannot hold it
        except ValueError:
            return f"<int of {value.bit_length()} bits>"
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        if id(value) in seen:
            return "<circular>"
        if depth >= 100:
            return "<too deep>"
        seen = seen | {id(value)}
        if isinstance(value, Mapping):
            return {
                _json_safe(_text(k), seen, depth): _json_safe(v, seen, depth + 1)
                for k, v in value.items()
            }
        return [_json_safe(v, seen, depth + 1) for v in value]
    return _json_safe(_text(value), seen, depth)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return str.__str__(value)
    try:
        text = str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"
    return text if type(text) is str else f"<unprintable {type(value).__name__}>"


def new_writer_id() -> str:
    host = socket.gethostname().split(".")[0][:24] or "host"
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in host)
    return f"{safe}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def group(records: Iterable[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Records by (file prefix, partition directory)."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        prefix = ACTIONS_PREFIX if r.get("record_type") == "action" else DECISIONS_PREFIX
        part = "dt=" + str(r.get("ts", ""))[:10]
        out.setdefault((prefix, part), []).append(r)
    return out


class LocalJsonlSink:
    """Appends to ``<root>/dt=YYYY-MM-DD/{actions,decisions}-<writer>-<seq>.jsonl[.gz]``.

    A file rolls over to the next ``seq`` after ``max_file_bytes``. With ``compress=True`` each
    batch is a gzip member appended to the file (concatenated members are valid gzip).

    A batch that fails half-way (a full disk) leaves no part of a line: the file is cut back to
    where the failed append began. The groups of that batch already written are remembered, so
    when the writer retries the batch (the same records) they are not appended twice.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        writer_id: str | None = None,
        compress: bool = False,
        max_file_bytes: int = 128 * 1024 * 1024,
    ) -> None:
        self.root = Path(root)
        self.writer_id = writer_id or new_writer_id()
        self.compress = compress
        self.max_file_bytes = max_file_bytes
        self._seq: dict[tuple[str, str], int] = {}
        # records (by identity: the writer retries with the same objects) written by a batch
        # that then failed; forgotten once a batch succeeds
        self._written: set[int] = set()

    def _path(self, prefix: str, part: str) -> Path:
        seq = self._seq.get((prefix, part), 1)
        suffix = ".jsonl.gz" if self.compress else ".jsonl"
        while True:
            path = self.root / part / f"{prefix}{self.writer_id}-{seq:06d}{suffix}"
            if not path.exists() or path.stat().st_size < self.max_file_bytes:
                self._seq[(prefix, part)] = seq
                return path
            seq += 1

    def write(self, records: list[dict[str, Any]]) -> None:
        todo = [r for r in records if id(r) not in self._written]
        # every group serialised before any is written (a retried batch is not half-written)
        groups = [
            (key, items, b"".join(line(r) for r in items)) for key, items in group(todo).items()
        ]
        for (prefix, part), items, data in groups:
            path = self._path(prefix, part)
            path.parent.mkdir(parents=True, exist_ok=True)
            if self.compress:
                data = gzip.compress(data, compresslevel=6)
            with open(path, "ab") as f:
                start = f.tell()
                try:
                    f.write(data)
                    f.flush()
                except BaseException:
                    with contextlib.suppress(OSError):  # no half line for the next append
                        f.truncate(start)
                    raise
            self._written.update(id(r) for r in items)
        self._written.clear()


class S3Sink:
    """One gzip object per batch and day: ``<prefix>/dt=.../actions-<writer>-<n>.jsonl.gz``.

    ``client`` is a boto3 S3 client passed in. Objects are never overwritten (unique names).
    """

    def __init__(
        self, client: Any, bucket: str, prefix: str = "", *, writer_id: str | None = None
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.writer_id = writer_id or new_writer_id()
        self._n = 0

    def write(self, records: list[dict[str, Any]]) -> None:
        for (prefix, part), items in group(records).items():
            self._n += 1
            stamp = time.strftime("%H%M%S", time.gmtime())
            key = f"{self.prefix}{part}/{prefix}{self.writer_id}-{stamp}-{self._n:06d}.jsonl.gz"
            body = gzip.compress(b"".join(line(r) for r in items))
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType="application/x-ndjson",
                ContentEncoding="gzip",
            )


class OtlpJsonSink:
    """Writes OpenTelemetry GenAI spans as OTLP JSON files (no OpenTelemetry SDK needed):
    ``<root>/dt=.../spans-<writer>-<n>.otlp.json``, one file per batch and day. Collectors'
    file receivers and ``agentctl actions`` / ``trace`` read them."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        service_name: str | None = None,
        writer_id: str | None = None,
    ) -> None:
        self.root = Path(root)
        self.service_name = service_name
        self.writer_id = writer_id or new_writer_id()
        self._n = 0

    def write(self, records: list[dict[str, Any]]) -> None:
        from agentctl.sdk.otlp import records_to_otlp

        by_day: dict[str, list[dict[str, Any]]] = {}
        for r in records:
            by_day.setdefault("dt=" + str(r.get("ts", ""))[:10], []).append(r)
        for part, items in by_day.items():
            self._n += 1
            path = self.root / part / f"spans-{self.writer_id}-{self._n:06d}.otlp.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            doc = records_to_otlp(items, service_name=self.service_name)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(doc, ensure_ascii=False, default=str), encoding="utf-8")
            tmp.replace(path)


class OtlpHttpSink:
    """Sends GenAI spans to an OpenTelemetry collector over OTLP/HTTP with JSON encoding
    (``POST <endpoint>`` with ``Content-Type: application/json``; the collector's default is
    ``http://localhost:4318/v1/traces``). A non-2xx answer or a network error raises, so the
    writer keeps the batch and retries it with backoff."""

    def __init__(
        self,
        endpoint: str = "http://localhost:4318/v1/traces",
        *,
        service_name: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.endpoint = endpoint
        self.service_name = service_name
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.timeout = timeout

    def write(self, records: list[dict[str, Any]]) -> None:
        import urllib.request

        from agentctl.sdk.otlp import records_to_otlp

        try:
            doc = records_to_otlp(records, service_name=self.service_name)
        except Exception:  # a value JSON cannot hold as it is: see json_bytes
            safe = [_json_safe(r, set(), 0) for r in records]
            doc = records_to_otlp(safe, service_name=self.service_name)
        body = json_bytes(doc)
        request = urllib.request.Request(
            self.endpoint, data=body, headers=self.headers, method="POST"
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            if not 200 <= response.status < 300:
                raise OSError(f"OTLP endpoint answered {response.status}")


class FanOutSink:
    """Writes every batch to several sinks; fails if any fails. The writer then retries the
    batch (the same records): each sink gets only the records it has not taken yet, so a sink
    that succeeded does not receive them twice (``actions`` would count them twice)."""

    def __init__(self, *sinks: Sink) -> None:
        self.sinks = sinks
        # per sink, the records (by identity) it took from a batch that failed on another
        self._taken: list[set[int]] = [set() for _ in sinks]

    def write(self, records: list[dict[str, Any]]) -> None:
        errors = []
        for sink, taken in zip(self.sinks, self._taken, strict=True):
            todo = [r for r in records if id(r) not in taken]
            if not todo:
                continue
            try:
                sink.write(todo)
            except Exception as exc:
                errors.append(exc)
            else:
                taken.update(id(r) for r in todo)
        if errors:
            raise errors[0]
        for taken in self._taken:  # the batch is done: the writer lets its records go
            taken.clear()


@dataclass
class WriterStats:
    submitted: int = 0
    written: int = 0
    dropped: int = 0
    sink_errors: int = 0
    last_error: str | None = None

    @property
    def pending(self) -> int:
        return self.submitted - self.written - self.dropped


class Writer:
    """Bounded, batched, non-blocking writer in front of a sink (policy: module docstring).

    ``background=False`` runs no thread: records are written only by ``flush()`` (tests, and
    short scripts that flush at the end).
    """

    def __init__(
        self,
        sink: Sink,
        *,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        max_buffer: int = 50_000,
        max_backoff: float = 30.0,
        warn_every: float = 60.0,
        background: bool = True,
    ) -> None:
        self.sink = sink
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_buffer = max_buffer
        self.max_backoff = max_backoff
        self.warn_every = warn_every
        self.stats = WriterStats()
        self._buffer: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()
        self._io_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._backoff = 0.0
        self._last_warning = float("-inf")
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(
                target=self._run, name="agentctl-sdk-writer", daemon=True
            )
            self._thread.start()
            atexit.register(self.close)

    def submit(self, record: dict[str, Any]) -> None:
        """Queue one record. Never blocks on I/O, never raises."""
        with self._lock:
            self.stats.submitted += 1
            if len(self._buffer) >= self.max_buffer:
                self.stats.dropped += 1
                self._warn_dropped()
                return
            self._buffer.append(record)
            full = len(self._buffer) >= self.batch_size
        if full and self._backoff == 0.0:
            self._wake.set()

    def _warn_dropped(self) -> None:
        now = time.monotonic()
        if now - self._last_warning >= self.warn_every:
            self._last_warning = now
            log.warning(
                "agentctl.sdk: audit buffer full (%d records; sink error: %s); "
                "%d records dropped so far",
                self.max_buffer,
                self.stats.last_error,
                self.stats.dropped,
            )

    def flush(self) -> bool:
        """Write everything buffered now. True when the buffer was emptied."""
        with self._io_lock:
            while True:
                with self._lock:
                    batch = [
                        self._buffer[i] for i in range(min(self.batch_size, len(self._buffer)))
                    ]
                if not batch:
                    return True
                try:
                    self.sink.write(batch)
                except Exception as exc:
                    self.stats.sink_errors += 1
                    self.stats.last_error = f"{type(exc).__name__}: {exc}"
                    log.debug("agentctl.sdk: sink write failed: %s", self.stats.last_error)
                    return False
                with self._lock:
                    for _ in batch:
                        self._buffer.popleft()
                    self.stats.written += len(batch)

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self._backoff or self.flush_interval)
            self._wake.clear()
            if self.flush():
                self._backoff = 0.0
            else:
                self._backoff = min(self.max_backoff, max(self.flush_interval, self._backoff * 2))

    def close(self) -> None:
        """Stop the thread and make a last flush attempt."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.flush()
