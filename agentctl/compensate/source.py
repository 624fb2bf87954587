"""Where rollback reads action records: the trace readers of :mod:`agentctl.trace.query`.

The audit location is the spec's ``audit.location`` (a directory or ``s3://bucket/prefix``),
or an explicit ``source``. Bad lines are counted (``ScanStats``), never fatal, never dropped
silently: the plan reports how many there were. Executed actions that list no effects get the
effects the spec's per-tool extractors derive (:mod:`agentctl.trace.extract`, marked
``derived: true``), as ``agentctl actions`` and ``agentctl trace`` show them; pass ``derived``
(an ``ExtractStats``) to get the values the extractors could not find counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from agentctl.aws import Aws
from agentctl.errors import BadInputError
from agentctl.spec.models import AgentSpec


def audit_location(
    spec: AgentSpec, source: str | None = None, spec_dir: str | Path | None = None
) -> str:
    """``source``, else the spec's ``audit.location`` (relative: against the spec's dir)."""
    if source:
        return source
    audit = spec.audit
    location = audit.location if audit is not None else None
    if audit is not None and spec_dir is not None:
        return audit.resolve(spec_dir)
    if not location:
        raise BadInputError(
            f"{spec.name}: no audit location to read action records from",
            hint="declare `audit: {location: ...}` in the spec, or pass --source DIR|s3://...",
        )
    return str(location)


def load_actions(
    spec: AgentSpec,
    aws: Aws,
    *,
    since: datetime,
    until: datetime,
    where: str | None = None,
    tool: str | None = None,
    source: str | None = None,
    stats: Any | None = None,
    spec_dir: str | Path | None = None,
    derived: Any | None = None,
) -> Iterator[Any]:
    """The agent's action records with ``since <= ts < until`` matching ``where``."""
    from agentctl.trace.extract import Extraction
    from agentctl.trace.query import iter_actions

    location = audit_location(spec, source, spec_dir)
    s3 = aws.client("s3") if location.startswith("s3://") else None
    actions = iter_actions(
        location, spec.name, since, until, where, tool, stats=stats, s3_client=s3
    )
    return Extraction(spec, derived).all(actions)
