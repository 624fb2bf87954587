"""actions, trace: what the agent did, and why."""

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentctl.cli.context import globals_of
from agentctl.cli.errors import boundary

if TYPE_CHECKING:
    from rich.console import Console

    from agentctl.trace.extract import ExtractStats
    from agentctl.trace.scan import ScanStats
    from agentctl.trace.service import ActionsResult, TraceResult

Agent = Annotated[str, typer.Argument(help="Agent name: runbooks/AGENT.yaml.")]
Source = Annotated[
    str | None,
    typer.Option(
        "--source", help="Read this directory or s3://bucket/prefix instead of the spec's audit."
    ),
]
Engine = Annotated[
    str,
    typer.Option(
        "--engine",
        help="auto (DuckDB 2.0.1+ when installed, else python), duckdb, python, or athena "
        "(actions only).",
    ),
]


def _short(value: Any, width: int = 60, *, compact: bool = False) -> str:
    seps = (",", ":") if compact else (", ", ": ")
    text = json.dumps(value, ensure_ascii=False, separators=seps, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def _report_bad(con: "Console", stats: "ScanStats") -> None:
    """Bad input is reported, never hidden: counts by reason and the first locations."""
    if not stats.bad_total:
        return
    reasons = ", ".join(f"{n} {r}" for r, n in sorted(stats.bad.items()))
    con.print(f"warning: {stats.bad_total} unreadable lines skipped ({reasons})", style="yellow")
    for e in stats.examples:
        con.print(f"  {e.file}:{e.line}: {e.reason}: {e.detail}", style="yellow", markup=False)


def _report_missing(con: "Console", derived: "ExtractStats") -> None:
    """Effects the spec's extractors could not read are reported, as bad lines are."""
    if not derived.missing_total:
        return
    con.print(
        f"warning: {derived.missing_total} values the spec's effect extractors could not read "
        "(those actions list fewer effects):",
        style="yellow",
    )
    for (tool, name, path, reason), n in sorted(derived.missing.items()):
        con.print(f"  {n}x {tool} {name} {path}: {reason}", style="yellow", markup=False)
    for m in derived.examples:
        con.print(f"  e.g. action {m.action_id}: {m.field} {m.path}", style="yellow", markup=False)


def _show_actions(result: "ActionsResult") -> None:
    from rich.table import Table
    from rich.text import Text

    from agentctl.cli import render

    con = render.console()
    err = render.console(stderr=True)
    if result.sql:
        for statement in result.sql:
            typer.echo(statement + ";\n")  # SQL is copied into consoles: never wrapped
        if result.dry_run:
            err.print("(dry run: nothing was sent to Athena)")
            return
    if result.actions:
        table = Table(box=None, padding=(0, 1), pad_edge=False, header_style="bold")
        # ids are copied into `agentctl trace`: those columns keep their full width; args give way.
        fixed = {
            "time (UTC)": 14,
            "action": max(len(a.action_id) for a in result.actions),
            "tool": max(len(a.tool) for a in result.actions),
            "status": max(len(a.status) for a in result.actions),
            "unit": max(len(a.unit_of_work) for a in result.actions),
            "effects": 7,
        }
        for name, width in fixed.items():
            table.add_column(name, no_wrap=True, min_width=max(width, len(name)))
        room = con.width - sum(max(w, len(n)) for n, w in fixed.items()) - 2 * len(fixed) - 1
        table.add_column("args", overflow="ellipsis", no_wrap=True, max_width=max(room, 12))
        for a in result.actions:
            style = {"refused": "red", "shadowed": "yellow", "failed": "bold red"}.get(a.status)
            table.add_row(
                a.ts.strftime("%m-%d %H:%M:%S"),
                Text(a.action_id),
                Text(a.tool),
                Text(a.status, style=style or ""),
                Text(a.unit_of_work),
                Text(str(len(a.effects)), justify="right"),
                Text(_short(a.args, 200, compact=True)),
            )
        con.print(table)
    window = f"{result.since:%Y-%m-%d %H:%M} → {result.until:%Y-%m-%d %H:%M} UTC"
    filters = "".join(
        f" {k}={v!r}" for k, v in (("tool", result.tool), ("where", result.where)) if v
    )
    shown = (
        f" (showing {len(result.actions)}; raise --limit)"
        if len(result.actions) < result.count and result.actions
        else ""
    )
    con.print(
        f"{result.count} actions of {result.agent} in {window}{filters}{shown} "
        f"[{result.engine}, {result.stats.files} files]",
        markup=False,
    )
    _report_bad(err, result.stats)
    _report_missing(err, result.derived)


def _show_trace(result: "TraceResult") -> None:
    from rich.text import Text
    from rich.tree import Tree

    from agentctl.cli import render

    con = render.console()
    for chain in result.chains:
        a = chain.action
        head = Text.assemble(
            ("action ", "bold"),
            (a.action_id, "bold"),
            f"  {a.tool}  ",
            (a.status, {"executed": "green", "refused": "red"}.get(a.status, "yellow")),
            f"  {a.ts:%Y-%m-%d %H:%M:%S} UTC",
        )
        tree = Tree(head)
        tree.add(
            Text(
                f"agent {a.agent} · release {a.release_id or '?'} · unit {a.unit_of_work} · "
                f"trace {a.trace_id}",
                style="dim",
            )
        )
        for r in chain.records:
            when = f"{r.ts:%H:%M:%S}"
            if r.record_type == "input":
                tree.add(Text(f"{when} input ({r.channel or '-'}): {_short(r.content, 80)}"))
            elif r.record_type == "retrieval":
                node = tree.add(Text(f"{when} retrieval {r.source}: {_short(r.query, 60)}"))
                for d in r.documents:
                    score = f" ({d.score:.2f})" if d.score is not None else ""
                    node.add(Text(f"{d.id}{score}"))
            elif r.record_type == "model_call":
                prompt = (
                    f" · prompt {r.prompt_template} {r.prompt_version or ''}".rstrip()
                    if r.prompt_template
                    else ""
                )
                answered = f" → {r.model_answered}" if r.model_answered else ""
                node = tree.add(Text(f"{when} model {r.model_requested}{answered}{prompt}"))
                if r.output is not None:
                    node.add(Text(f"output: {_short(r.output, 90)}"))
            elif r.action_id != a.action_id:
                tree.add(Text(f"{when} tool {r.tool} {_short(r.args, 60)} → {r.status}"))
        node = tree.add(
            Text.assemble(
                (f"{a.ts:%H:%M:%S} ▶ tool {a.tool} ", "bold"), _short(a.args, 70), f" → {a.status}"
            )
        )
        node.add(Text(f"idempotency key {a.idempotency_key}"))
        if a.error:
            node.add(Text(f"error: {a.error}", style="red"))
        node.add(Text(f"result: {_short(a.result, 90)}"))
        effects = node.add(Text(f"effects ({len(a.effects)})"))
        for e in a.effects:
            kind = "reversible" if e.reversible else "IRREVERSIBLE"
            details = f" {_short(e.details, 50)}" if e.details else ""
            source = ", derived from the spec" if getattr(e, "derived", False) else ""
            effects.add(
                Text(
                    f"{e.system} {e.resource_type} {e.resource_id} {e.operation} "
                    f"({kind}{source}){details}"
                )
            )
        con.print(tree)
    err = render.console(stderr=True)
    _report_bad(err, result.stats)
    _report_missing(err, result.derived)


def register(app: typer.Typer) -> None:
    @app.command()
    @boundary
    def actions(
        ctx: typer.Context,
        agent: Agent,
        since: Annotated[
            str, typer.Option("--since", help="Start (ISO 8601, UTC if no offset; or 2h, 1d).")
        ],
        until: Annotated[str, typer.Option("--until", help="End (exclusive); default now.")] = (
            "now"
        ),
        tool: Annotated[str | None, typer.Option("--tool", help="Only this tool.")] = None,
        where: Annotated[
            str | None,
            typer.Option(
                "--where", help="Filter, e.g. \"args.amount > 30 and status = 'executed'\"."
            ),
        ] = None,
        count: Annotated[bool, typer.Option("--count", help="Only count the matches.")] = False,
        limit: Annotated[
            int, typer.Option("--limit", min=0, help="Show at most this many.")
        ] = 1000,
        engine: Engine = "auto",
        source: Source = None,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="With --engine athena: print the SQL only.")
        ] = False,
    ) -> None:
        """List the agent's actions in a time window (tool calls with their status, arguments,
        effects and idempotency keys), from its audit location."""
        from agentctl.cli import render
        from agentctl.clock import SystemClock
        from agentctl.trace.service import Traces
        from agentctl.trace.when import parse_when

        g = globals_of(ctx)
        clock = SystemClock()
        now = clock.now()
        start = parse_when(since, now, option="--since")
        end = parse_when(until, now, option="--until")
        traces = Traces(g.aws(), runbooks_dir=g.runbooks_dir)
        result = traces.actions(
            agent,
            start,
            end,
            tool=tool,
            where=where,
            count_only=count,
            limit=limit,
            engine=engine,
            source=source,
            dry_run=dry_run,
            wait=_athena_wait(clock),
        )
        if g.json:
            render.print_json(result.to_dict())
        else:
            _show_actions(result)

    @app.command()
    @boundary
    def trace(
        ctx: typer.Context,
        action: Annotated[str, typer.Argument(help="Action id or idempotency key.")],
        agent: Annotated[
            str | None, typer.Option("--agent", help="Look in this agent's audit location only.")
        ] = None,
        since: Annotated[
            str | None, typer.Option("--since", help="Only look from here (faster).")
        ] = None,
        until: Annotated[str | None, typer.Option("--until", help="Only look until here.")] = None,
        engine: Engine = "auto",
        source: Source = None,
    ) -> None:
        """Show the decision chain behind one action: input → retrieved context → model calls
        (model and prompt versions) → tool call → result → effects."""
        from agentctl.cli import render
        from agentctl.clock import SystemClock
        from agentctl.trace.service import Traces
        from agentctl.trace.when import parse_when

        g = globals_of(ctx)
        now = SystemClock().now()
        start = parse_when(since, now, option="--since") if since else None
        end = parse_when(until, now, option="--until") if until else None
        result = Traces(g.aws(), runbooks_dir=g.runbooks_dir).trace(
            action, agent=agent, source=source, since=start, until=end, engine=engine
        )
        if g.json:
            render.print_json(result.to_dict())
        else:
            _show_trace(result)


def _athena_wait(clock: Any) -> Any:
    from agentctl.clock import PollTimeout, poll_until
    from agentctl.errors import AgentctlError

    def wait(state: Any) -> str:
        try:
            return str(
                poll_until(
                    clock,
                    state,
                    lambda s: s in ("SUCCEEDED", "FAILED", "CANCELLED"),
                    timeout=600,
                    interval=1.0,
                )
            )
        except PollTimeout as exc:
            raise AgentctlError("Athena query still running after 600 s") from exc

    return wait
