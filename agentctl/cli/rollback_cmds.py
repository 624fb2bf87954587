"""rollback, releases record|list|mark, store init."""

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentctl.cli.context import globals_of
from agentctl.cli.errors import boundary

if TYPE_CHECKING:
    from agentctl.compensate.rollback import RollbackPlan, RollbackResult

Agent = Annotated[str, typer.Argument(help="Agent name: runbooks/AGENT.yaml.")]

releases_app = typer.Typer(
    help="Releases: model version + prompt template + tool schema, as one artifact.",
    no_args_is_help=True,
)
compensations_app = typer.Typer(
    help="The compensation ledger: each rollback item and its state.", no_args_is_help=True
)
store_app = typer.Typer(
    help="The incident store (SQLite file or DynamoDB table).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.command()(rollback)
    app.add_typer(releases_app, name="releases")
    app.add_typer(compensations_app, name="compensations")
    app.add_typer(store_app, name="store")


@boundary
def rollback(
    ctx: typer.Context,
    agent: Agent,
    to: Annotated[
        str,
        typer.Option("--to", help="Release id (or prefix), or last-known-good."),
    ] = "last-known-good",
    no_release: Annotated[
        bool, typer.Option("--no-release", help="Leave the release pointer alone.")
    ] = False,
    incident: Annotated[
        str | None,
        typer.Option("--incident", help="Journal into this incident; its window by default."),
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Window start: ISO 8601 or an age (2h).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Window end: ISO 8601, an age, or now.")
    ] = None,
    where: Annotated[
        str | None,
        typer.Option("--where", help="Only actions matching, e.g. 'args.amount > 30'."),
    ] = None,
    no_compensate: Annotated[
        bool, typer.Option("--no-compensate", help="Only move the release pointer.")
    ] = False,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Repeat the last rollback window of the open incident."),
    ] = False,
    source: Annotated[
        str | None,
        typer.Option("--source", help="Read actions here instead of the spec's audit location."),
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", min=1, max=256, help="Compensations sent in parallel.")
    ] = 16,
    lease: Annotated[
        float,
        typer.Option(
            "--lease",
            min=5.0,
            help="Seconds a run's claim holds before another run may take it over.",
        ),
    ] = 120.0,
    mitigations_csv: Annotated[
        Path | None,
        typer.Option("--mitigations-csv", help="Write the mitigation items to this CSV file."),
    ] = None,
    reason: Annotated[
        str, typer.Option("--reason", "-r", help="Why: recorded in the incident journal.")
    ] = "",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the plan; change nothing.")
    ] = False,
) -> None:
    """Move the release pointer back and compensate every side effect in the incident window,
    exactly once (resumable: run it again after a crash)."""
    from agentctl.cli import render
    from agentctl.cli.confirm import confirm
    from agentctl.compensate.rollback import (
        RollbackOptions,
        RollbackResult,
    )
    from agentctl.compensate.rollback import (
        mitigations_csv as csv_of,
    )
    from agentctl.trace.when import parse_when

    g = globals_of(ctx)
    ac = g.agentctl()
    now = ac.engine.clock.now()
    options = RollbackOptions(
        to=None if no_release else to,
        incident_id=incident,
        since=parse_when(since, now, option="--since") if since else None,
        until=parse_when(until, now, option="--until") if until else None,
        where=where,
        compensate=not no_compensate,
        source=source,
        resume=resume,
    )
    plan = ac.plan_rollback(agent, options)
    if dry_run:
        result = RollbackResult(plan=plan, dry_run=True)
        if g.json:
            render.print_json(result.to_dict())
        else:
            _show_plan(plan)
            render.console().print("dry run: nothing changed")
        raise typer.Exit(0)
    if not g.json:
        _show_plan(plan)
    if _has_work(plan):
        confirm(f"Roll back {agent}?", yes=yes, as_json=g.json, what=f"roll back {agent}")
    progress = None if g.json or not sys.stderr.isatty() else _progress_bar()
    try:
        result = ac.execute_rollback(
            plan,
            reason=reason,
            workers=workers,
            lease_seconds=lease,
            progress=progress.update if progress else None,
        )
    finally:
        if progress is not None:
            progress.close()
    if mitigations_csv is not None and plan.compensation is not None:
        mitigations_csv.write_text(csv_of(plan.compensation.mitigations), encoding="utf-8")
    if g.json:
        render.print_json(result.to_dict())
    else:
        _show_result(result, mitigations_csv)
    raise typer.Exit(int(result.exit_code))


def _has_work(plan: "RollbackPlan") -> bool:
    return bool(plan.pointer_change) or plan.to_send > 0 or plan.new_mitigations > 0


class _Progress:
    """A rich progress bar (rate and ETA) on stderr, fed from executor threads."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )

        from agentctl.cli.render import console

        self.bar = Progress(
            TextColumn("compensating"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=console(stderr=True),
            transient=False,
        )
        self.task = self.bar.add_task("compensating", total=None, rate="")
        self.bar.start()

    def update(self, done: int, total: int) -> None:
        task = self.bar.tasks[0]
        speed = task.speed or 0.0
        self.bar.update(self.task, completed=done, total=total, rate=f"{speed:,.0f}/s")

    def close(self) -> None:
        self.bar.stop()


def _progress_bar() -> _Progress:
    return _Progress()


def _show_plan(plan: "RollbackPlan") -> None:
    from rich.table import Table
    from rich.text import Text

    from agentctl.cli.render import console

    out = console()
    title = f"rollback {plan.agent}: plan"
    if plan.incident is not None:
        title += f" (incident {plan.incident.id})"
    table = Table(title=title, title_justify="left")
    table.add_column("what")
    table.add_column("target", overflow="fold")
    table.add_column("change", overflow="fold")
    if plan.pointer is not None:
        step = plan.pointer.steps[0]
        target = step.step.target
        if step.error is not None:
            change = f"cannot read: {step.error.message}"
        else:
            change = (
                plan.pointer_change
                or f"no change (already on {plan.target.id if plan.target else '?'})"
            )
        table.add_row("release pointer", target, change)
    comp = plan.compensation
    if comp is not None:
        for summary in comp.summaries.values():
            table.add_row(summary.tool, summary.target, summary.phrase())
    out.print(table)
    if comp is not None:
        line = f"window {plan.window_note}" + (f", where {comp.where}" if comp.where else "")
        out.print(line)
        out.print(
            f"{comp.headline()} · {comp.seen} actions read · {plan.already_done} already "
            f"compensated · {plan.to_send} to send"
            + (f" · {comp.not_run} refused/shadowed (nothing to undo)" if comp.not_run else "")
            + (
                f" · {plan.bad_lines} bad record lines (see `agentctl actions`)"
                if plan.bad_lines
                else ""
            )
            + (
                f" · {plan.derived.missing_total} effect values the spec's extractors could not"
                " read (see `agentctl actions`)"
                if plan.derived.missing_total
                else ""
            )
        )
        for problem in comp.problems[:10]:
            out.print(
                Text.assemble(
                    ("cannot plan", "red"),
                    f" {problem.action_id} ({problem.tool}): {problem.message}",
                )
            )


def _show_result(result: "RollbackResult", csv_path: Path | None) -> None:
    from rich.text import Text

    from agentctl.cli.render import console

    out = console()
    if result.pointer is not None:
        for r in result.pointer.results:
            detail = r.error or (r.change if r.outcome.value != "noop" else "already in place")
            out.print(f"release pointer: {r.outcome.value} — {detail}")
    report = result.execution
    if report is not None:
        out.print(
            f"compensations: {report.completed} applied, {report.already_done} already done, "
            f"{len(report.failed)} failed, {len(report.unknown)} outcome unknown, "
            f"{len(report.held)} held by another run, {len(report.conflicts)} payload changed; "
            f"{report.mitigations_recorded} mitigations recorded"
        )
        for item in report.problems[:20]:
            out.print(
                Text.assemble(
                    "  ",
                    (str(item.status), "red"),
                    f" {item.action_id} ({item.tool}): {item.detail}",
                )
            )
        if len(report.problems) > 20:
            out.print(f"  ... and {len(report.problems) - 20} more (--output json lists all)")
    if csv_path is not None:
        out.print(f"mitigations written to {csv_path}")
    code = int(result.exit_code)
    summary = f"incident {result.incident.id}" if result.incident else "no incident"
    meaning = {0: "done", 3: "partially done: re-run the same command to finish"}.get(
        code, "failed"
    )
    out.print(f"{summary} · exit {code}: {meaning}")


# -- releases ------------------------------------------------------------------------------------
@releases_app.command("record")
@boundary
def releases_record(
    ctx: typer.Context,
    agent: Agent,
    model: Annotated[str, typer.Option("--model", help="Exact model version id.")],
    prompt: Annotated[Path, typer.Option("--prompt", help="Prompt template file.")],
    tools: Annotated[Path, typer.Option("--tools", help="Tool schema file (JSON or YAML).")],
    function_version: Annotated[
        str | None,
        typer.Option("--function-version", help="Lambda version (for an alias pointer)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Record a floating model id anyway.")
    ] = False,
    note: Annotated[str, typer.Option("--note", help="Free text kept with the release.")] = "",
) -> None:
    """Record a release (model version, prompt digest, tool schema digest) with a content id."""
    from agentctl.cli import render

    g = globals_of(ctx)
    recorded = (
        g.agentctl()
        .releases()
        .record(
            agent,
            model=model,
            prompt=prompt,
            tools=tools,
            function_version=function_version,
            force=force,
            note=note,
        )
    )
    for warning in recorded.warnings:
        sys.stderr.write(f"warning: {warning}\n")
    if g.json:
        render.print_json(recorded.to_dict())
        return
    r = recorded.release
    verb = "recorded" if recorded.created else "already recorded"
    render.console().print(
        f"{verb} {r.id}: model {r.model}, prompt {r.prompt_digest[:19]}, "
        f"tools {r.tools_digest[:19]}"
    )


@releases_app.command("list")
@boundary
def releases_list(ctx: typer.Context, agent: Agent) -> None:
    """The agent's releases, newest first, with good/bad marks and the active one."""
    from rich.table import Table

    from agentctl.cli import render

    g = globals_of(ctx)
    listing = g.agentctl().releases().list(agent)
    if g.json:
        render.print_json(listing.to_dict())
        return
    table = Table(title=f"releases of {agent}", title_justify="left")
    for column in ("id", "active", "mark", "model", "prompt", "tools", "recorded"):
        table.add_column(column, overflow="fold")
    for r in listing.releases:
        table.add_row(
            r.id,
            "*" if r.id == listing.active else "",
            r.mark.value if r.mark else "",
            r.model + (" (floating)" if r.floating else ""),
            r.prompt_digest[7:19],
            r.tools_digest[7:19],
            f"{r.recorded_at:%Y-%m-%d %H:%M} by {r.recorded_by}",
        )
    render.console().print(table)
    if listing.active and listing.active not in {r.id for r in listing.releases}:
        render.console().print(f"active release {listing.active} was never recorded")


@releases_app.command("mark")
@boundary
def releases_mark(
    ctx: typer.Context,
    release: Annotated[str, typer.Argument(help="Release id (or a unique prefix).")],
    good: Annotated[bool, typer.Option("--good", help="Known good.")] = False,
    bad: Annotated[bool, typer.Option("--bad", help="Known bad.")] = False,
    agent: Annotated[
        str | None, typer.Option("--agent", "-a", help="The agent (default: found by id).")
    ] = None,
    note: Annotated[str, typer.Option("--note", help="Why.")] = "",
) -> None:
    """Mark a release known-good or bad (rollback --to last-known-good uses the marks)."""
    from agentctl.cli import render
    from agentctl.errors import BadInputError

    if good == bad:
        raise BadInputError("give exactly one of --good or --bad")
    g = globals_of(ctx)
    service = g.agentctl().releases()
    owner = agent or service.catalog.agent_of(release)
    marked = service.mark(owner, release, good=good, note=note)
    if g.json:
        render.print_json({"schema": "agentctl.release/v1", "release": marked.to_dict()})
    else:
        render.console().print(f"{marked.id} ({owner}) marked {marked.mark}")


# -- compensations --------------------------------------------------------------------------------
@compensations_app.command("list")
@boundary
def compensations_list(
    ctx: typer.Context,
    agent: Agent,
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            help="pending, in_progress, completed, failed, unknown or recorded (mitigations).",
        ),
    ] = None,
) -> None:
    """Every compensation and mitigation item of the agent in the ledger, with its state."""
    from rich.table import Table

    from agentctl.cli import render
    from agentctl.compensate.rollback import Rollback

    g = globals_of(ctx)
    rows = Rollback(g.agentctl()).items(agent, status)
    if g.json:
        render.print_json(
            {
                "schema": "agentctl.compensations/v1",
                "agent": agent,
                "items": [r.to_dict() for r in rows],
            }
        )
        return
    table = Table(title=f"compensations of {agent}", title_justify="left")
    for column in ("action", "tool", "kind", "status", "attempts", "detail"):
        table.add_column(column, overflow="fold")
    for r in rows:
        detail = r.error if r.status.value in ("failed", "unknown") else (r.result or "")
        table.add_row(r.action_id, r.tool, r.kind, r.status.value, str(r.attempts), detail or "")
    render.console().print(table)


@compensations_app.command("resolve")
@boundary
def compensations_resolve(
    ctx: typer.Context,
    agent: Agent,
    item: Annotated[str, typer.Argument(help="Action id (or ledger key prefix) of the item.")],
    applied: Annotated[
        bool, typer.Option("--applied", help="It took effect downstream: mark it completed.")
    ] = False,
    not_applied: Annotated[
        bool,
        typer.Option("--not-applied", help="It did not: the next rollback sends it (same key)."),
    ] = False,
) -> None:
    """Settle an item of unknown outcome after checking downstream (never guessed)."""
    from agentctl.cli import render
    from agentctl.compensate.rollback import Rollback
    from agentctl.errors import BadInputError

    if applied == not_applied:
        raise BadInputError("give exactly one of --applied or --not-applied")
    g = globals_of(ctx)
    row = Rollback(g.agentctl()).resolve(agent, item, applied=applied)
    if g.json:
        render.print_json({"schema": "agentctl.compensation/v1", "item": row.to_dict()})
    else:
        render.console().print(f"{row.action_id}: {row.status.value} ({row.result})")


# -- store ---------------------------------------------------------------------------------------
@store_app.command("init")
@boundary
def store_init(
    ctx: typer.Context,
    table: Annotated[
        str | None,
        typer.Option("--table", help="DynamoDB table (default: from --store dynamodb://TABLE)."),
    ] = None,
) -> None:
    """Create the store: the DynamoDB table (on-demand, conditional writes), or the SQLite file."""
    from agentctl.cli import render
    from agentctl.incidents.dynamodb import init_store

    g = globals_of(ctx)
    url = f"dynamodb://{table}" if table else g.store
    created: dict[str, Any] = init_store(url, g.aws())
    if g.json:
        render.print_json({"schema": "agentctl.store/v1", **created})
    else:
        verb = "created" if created["created"] else "already exists:"
        render.console().print(f"{verb} {created['store']}")
