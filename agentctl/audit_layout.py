"""The on-disk (and S3) layout of audit records. Standard library only.

::

    <location>/dt=YYYY-MM-DD/actions-<writer>-<seq>.jsonl[.gz]     action records
    <location>/dt=YYYY-MM-DD/decisions-<writer>-<seq>.jsonl[.gz]   input / retrieval / model_call
    <location>/dt=YYYY-MM-DD/<anything>.otlp.json                  OTLP JSON exports (read only)

``dt`` is the UTC day of each record's ``ts``. ``<location>`` is the spec's ``audit.location``
(one directory or S3 prefix per agent). Readers prune by ``dt`` before opening any file.

Shared by the writer (:mod:`agentctl.sdk.sinks`) and the readers (:mod:`agentctl.trace.source`).
It lives outside :mod:`agentctl.sdk` so that a reader does not import the SDK package (the agent,
the kill switch, the sinks) to learn a file name; :mod:`agentctl.sdk.layout` is its public name.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

PARTITION = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")
ACTIONS_PREFIX = "actions-"
DECISIONS_PREFIX = "decisions-"
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz")
OTLP_SUFFIX = ".otlp.json"  # what the SDK's OTLP sink writes
OTLP_SUFFIXES = (OTLP_SUFFIX, ".otlp.json.gz")  # what readers take (a collector's gzip export)


def partition_of(ts: datetime) -> str:
    """The partition directory name of a timestamp (UTC day)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    # isoformat, not strftime("%Y"): the year has its four digits before 1000 too (`dt=0999-...`)
    return "dt=" + ts.astimezone(UTC).date().isoformat()


def days_between(since: datetime, until: datetime) -> list[date]:
    """Every UTC day a [since, until) window touches (``until`` itself is excluded)."""
    start = since.astimezone(UTC).date() if since.tzinfo else since.date()
    last = max(until - timedelta(microseconds=1), since)
    end = last.astimezone(UTC).date() if last.tzinfo else last.date()
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def partition_day(name: str) -> date | None:
    """The day of a partition directory name, or None if it is not one."""
    m = PARTITION.match(name)
    if not m:
        return None
    try:
        return date.fromisoformat(m.group(1))
    except ValueError:
        return None
