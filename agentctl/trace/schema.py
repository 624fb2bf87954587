"""The parts of the record schema (:mod:`agentctl.trace.records`) that readers need without its
models: the versions, the timestamp forms and the action statuses.

This module imports no pydantic, so a DuckDB count (``agentctl actions --count``), which never
validates a record in Python, starts without it; :mod:`agentctl.trace.records` builds the models
on these and re-exports them.
"""

from __future__ import annotations

from enum import StrEnum

SCHEMA_VERSION = 1
SUPPORTED_VERSIONS = frozenset({1})
# The timestamps a record may carry, as text (every engine reads exactly these; the DuckDB
# engine matches the same patterns in SQL): an ISO 8601 date, then optionally a time (T, t or a
# space; hours 00-23; seconds and a fraction optional) and a zone (Z, z, +hh:mm, +hhmm; none is
# UTC); or Unix time in seconds (milliseconds beyond 2e10) as digits. A JSON number is Unix time.
TS_ISO = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]+)?)?"
    r"([Zz]|[+-]([01][0-9]|2[0-3]):?[0-5][0-9])?)?"
)
TS_NUMBER = r"-?[0-9]+(\.[0-9]+)?"


class ActionStatus(StrEnum):
    """What happened to a guarded tool call."""

    EXECUTED = "executed"  # the tool ran and returned
    REFUSED = "refused"  # the kill switch (tool registry) refused it; nothing ran
    SHADOWED = "shadowed"  # shadow mode: recorded what it would have done; nothing ran
    FAILED = "failed"  # the tool ran and raised: effects unknown unless listed
