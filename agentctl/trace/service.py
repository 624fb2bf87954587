"""The library facade behind ``agentctl actions`` and ``agentctl trace``.

Resolves an agent's audit location from its spec (``audit.location``; relative paths against the
spec file's directory), picks the engine, runs the query and returns result objects with a stable
``to_dict()`` for ``--output json``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentctl.errors import BadInputError
from agentctl.trace.chain import Chain, decision_chain, find_actions
from agentctl.trace.extract import Extraction, ExtractStats
from agentctl.trace.query import check_limit, check_window, duckdb_usable, iter_actions
from agentctl.trace.scan import ScanStats, loads_record

if TYPE_CHECKING:
    from agentctl.aws import Aws
    from agentctl.spec.audit import AuditSpec
    from agentctl.trace.records import ActionRecord  # pydantic: imported by what reads records

ENGINES = ("auto", "duckdb", "python", "athena")


@dataclass
class ActionsResult:
    agent: str
    source: str
    since: datetime
    until: datetime
    tool: str | None
    where: str | None
    engine: str
    count: int = 0
    actions: list[ActionRecord] = field(default_factory=list)
    stats: ScanStats = field(default_factory=ScanStats)
    sql: list[str] = field(default_factory=list)
    dry_run: bool = False
    limit: int | None = None
    derived: ExtractStats = field(default_factory=ExtractStats)  # effects from the spec

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "agentctl.actions/v1",
            "agent": self.agent,
            "source": self.source,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "tool": self.tool,
            "where": self.where,
            "engine": self.engine,
            "dry_run": self.dry_run,
            "count": self.count,
            "shown": len(self.actions),
            "actions": [a.model_dump(mode="json") for a in self.actions],
            "scan": self.stats.to_dict(),
            "derived_effects": self.derived.to_dict(),
            "sql": self.sql,
        }


@dataclass
class TraceResult:
    ident: str
    source: str
    chains: list[Chain]
    stats: ScanStats
    derived: ExtractStats = field(default_factory=ExtractStats)  # effects from the spec

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "agentctl.trace/v1",
            "ident": self.ident,
            "source": self.source,
            "traces": [c.to_dict() for c in self.chains],
            "scan": self.stats.to_dict(),
            "derived_effects": self.derived.to_dict(),
        }


class Traces:
    """Queries over agents' audit locations. ``aws`` is needed only for S3 and Athena."""

    def __init__(self, aws: Aws | None = None, *, runbooks_dir: str | Path | None = None) -> None:
        self.aws = aws
        self.runbooks_dir = runbooks_dir

    def audit_of(self, agent: str) -> tuple[str, AuditSpec]:
        """The agent's resolved audit location and its audit spec."""
        from agentctl.spec.loader import find_spec, load_agent

        spec = load_agent(agent, self.runbooks_dir)
        if spec.audit is None:
            raise BadInputError(
                f"{agent} declares no audit location",
                hint="add `audit: {location: ../audit/" + agent + "}` to its spec, "
                "or pass --source",
            )
        path = find_spec(agent, self.runbooks_dir)
        return spec.audit.resolve(path.parent), spec.audit

    def agents_with_audit(self) -> list[str]:
        from agentctl.spec.loader import load_spec, runbooks_dir

        names = []
        for path in sorted(runbooks_dir(self.runbooks_dir).glob("*.y*ml")):
            try:
                spec = load_spec(path)
            except BadInputError:
                continue
            if spec.audit is not None:
                names.append(spec.name)
        return names

    def extraction(self, agent: str, stats: ExtractStats | None = None) -> Extraction:
        """The agent spec's effect extractors (none when ``agent`` has no spec: a ``--source``
        read of an agent this runbooks directory does not know). An invalid spec raises."""
        from agentctl.errors import UnknownAgentError
        from agentctl.spec.loader import load_agent

        try:
            spec = load_agent(agent, self.runbooks_dir)
        except UnknownAgentError:
            spec = None
        return Extraction(spec, stats)

    def _with_effects(self, result: ActionsResult) -> ActionsResult:
        """Derived effects on the listed actions (``count`` and ``--where`` see the records as
        written; see :mod:`agentctl.trace.extract`)."""
        if result.actions:
            derive = self.extraction(result.agent, result.derived)
            result.actions = list(derive.all(result.actions))
        return result

    def _s3(self, source: str) -> Any | None:
        if not source.startswith("s3://"):
            return None
        if self.aws is None:
            raise BadInputError("reading s3:// needs AWS settings")
        return self.aws.client("s3")

    def actions(
        self,
        agent: str,
        since: datetime,
        until: datetime,
        *,
        tool: str | None = None,
        where: str | None = None,
        count_only: bool = False,
        limit: int | None = None,
        engine: str = "auto",
        source: str | None = None,
        dry_run: bool = False,
        wait: Callable[[Callable[[], str]], str] | None = None,
    ) -> ActionsResult:
        since, until = check_window(since, until)
        if engine not in ENGINES:
            raise BadInputError(f"unknown engine {engine!r}", hint="use " + ", ".join(ENGINES))
        check_limit(limit)  # before the count, which never reaches iter_actions' own check
        audit: AuditSpec | None = None
        if source is None:
            source, audit = self.audit_of(agent)
        result = ActionsResult(agent, source, since, until, tool, where, engine, limit=limit)
        if engine == "athena":
            return self._athena(result, audit, count_only, dry_run, wait)
        if dry_run:
            raise BadInputError("--dry-run shows the SQL of --engine athena only")
        if engine == "auto":
            engine = "duckdb" if duckdb_usable(source) else "python"
        result.engine = engine
        s3 = self._s3(source)
        if engine == "duckdb":
            from agentctl.trace import where as where_lang
            from agentctl.trace.duck import count_actions
            from agentctl.trace.query import ACTION_KINDS
            from agentctl.trace.source import open_location

            where_lang.predicate(where)  # syntax errors before any I/O
            location = open_location(source, s3_client=s3)
            files = location.files(since, until, ACTION_KINDS)
            result.count = count_actions(
                location, files, agent, since, until, where, tool, stats=result.stats
            )
            if count_only or result.count == 0 or limit == 0:
                return result
            # the listing re-reads the (cached) window; only its validation failures are new
            listing = ScanStats()
            result.actions = list(
                iter_actions(
                    source,
                    agent,
                    since,
                    until,
                    where,
                    tool,
                    stats=listing,
                    s3_client=s3,
                    engine=engine,
                    limit=limit,
                )
            )
            _add_invalid(result.stats, listing)
            return self._with_effects(result)
        for record in iter_actions(
            source,
            agent,
            since,
            until,
            where,
            tool,
            stats=result.stats,
            s3_client=s3,
            engine=engine,
        ):
            result.count += 1
            if not count_only and (limit is None or len(result.actions) < limit):
                result.actions.append(record)
        return self._with_effects(result)

    def _athena(
        self,
        result: ActionsResult,
        audit: AuditSpec | None,
        count_only: bool,
        dry_run: bool,
        wait: Callable[[Callable[[], str]], str] | None,
    ) -> ActionsResult:

        from pydantic import ValidationError

        from agentctl.trace import athena
        from agentctl.trace.records import ActionRecord

        target = athena.target_for(result.agent, result.source, audit.athena if audit else None)
        sql = athena.action_sql(
            target,
            result.agent,
            result.since,
            result.until,
            result.where,
            result.tool,
            count=count_only,
        )
        result.sql = [athena.ddl(target), sql]
        result.dry_run = dry_run
        if dry_run:
            return result
        if self.aws is None or wait is None:
            raise BadInputError("--engine athena needs AWS settings")
        rows = athena.run(self.aws.client("athena"), target, sql, wait=wait)
        if count_only:
            result.count = int(rows[0][0] or 0) if rows else 0
            return result
        for n, row in enumerate(rows, start=1):
            result.stats.lines += 1
            try:
                record = ActionRecord.model_validate(loads_record(row[0] or ""))
            except (ValidationError, ValueError) as exc:
                result.stats.add_bad("athena", n, "invalid", str(exc).splitlines()[0])
                continue
            result.count += 1
            if result.limit is None or len(result.actions) < result.limit:
                result.actions.append(record)
        return self._with_effects(result)

    def trace(
        self,
        ident: str,
        *,
        agent: str | None = None,
        source: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        engine: str = "auto",
    ) -> TraceResult:
        if engine not in ("auto", "duckdb", "python"):
            raise BadInputError(f"trace: unknown engine {engine!r}", hint="duckdb or python")
        if source is not None:
            sources = [source]
        elif agent is not None:
            sources = [self.audit_of(agent)[0]]
        else:
            sources = [self.audit_of(a)[0] for a in self.agents_with_audit()]
            # an agent that has not written anything yet has no directory: nothing to search
            sources = [s for s in sources if s.startswith("s3://") or Path(s).is_dir()]
            if not sources:
                raise BadInputError(
                    "no agent declares an audit location", hint="pass --agent or --source"
                )
        from agentctl.trace.chain import ActionNotFoundError

        stats = ScanStats()
        last: ActionNotFoundError | None = None
        for src in sources:
            s3 = self._s3(src)
            try:
                found = find_actions(
                    src,
                    ident,
                    agent=agent,
                    since=since,
                    until=until,
                    stats=stats,
                    s3_client=s3,
                    engine=engine,
                )
            except ActionNotFoundError as exc:
                last = exc
                continue
            chains = [
                decision_chain(src, a, stats=stats, s3_client=s3, engine=engine) for a in found
            ]
            derived = ExtractStats()
            return TraceResult(
                ident, src, self._chains_with_effects(chains, derived), stats, derived
            )
        assert last is not None
        if len(sources) > 1:
            last.message = f"no action with id or idempotency key {ident!r} in any audit location"
        raise last

    def _chains_with_effects(self, chains: list[Chain], derived: ExtractStats) -> list[Chain]:
        """Derived effects on each chain's action and on the earlier tool calls it shows."""
        from agentctl.trace.records import ActionRecord

        by_agent: dict[str, Extraction] = {}
        done: dict[tuple[str, str, str], ActionRecord] = {}  # each record derived, counted once

        def once(record: ActionRecord) -> ActionRecord:
            key = (record.agent, record.span_id, record.action_id)
            if key not in done:
                derive = by_agent.get(record.agent)
                if derive is None:
                    derive = by_agent[record.agent] = self.extraction(record.agent, derived)
                done[key] = derive(record)
            return done[key]

        out = []
        for chain in chains:
            action = once(chain.action)
            records: list[Any] = [
                once(r) if isinstance(r, ActionRecord) else r for r in chain.records
            ]
            out.append(Chain(action, records))
        return out


def _add_invalid(stats: ScanStats, listing: ScanStats) -> None:
    """Records the listing pass rejected on validation (beyond what classification counted)."""
    extra = listing.bad["invalid"] - stats.bad["invalid"]
    if extra > 0:
        stats.bad["invalid"] += extra
        seen = {(e.file, e.line) for e in stats.examples}
        stats.examples.extend(
            e for e in listing.examples if e.reason == "invalid" and (e.file, e.line) not in seen
        )
        del stats.examples[5:]
