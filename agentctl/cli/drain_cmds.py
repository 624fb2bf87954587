"""drain (and resume --redrive): stop intake, watch in-flight work finish, divert the queue."""

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentctl.cli.context import globals_of
from agentctl.cli.errors import boundary
from agentctl.cli.phase_cmds import Agent, DryRun, Reason, Yes

if TYPE_CHECKING:
    from rich.console import Console

    from agentctl.drain.service import DrainPlan, DrainReport, QueueMove, RedrivePlan
    from agentctl.drain.wait import InFlight
    from agentctl.engine.model import RunResult


def register(app: typer.Typer) -> None:
    @app.command()
    @boundary
    def drain(
        ctx: typer.Context,
        agent: Agent,
        divert: Annotated[
            bool,
            typer.Option(
                "--divert",
                help="Also move every queued message of the work queues to their review queues.",
            ),
        ] = False,
        timeout: Annotated[
            float,
            typer.Option(
                "--timeout", min=0, help="Seconds to wait for in-flight work to finish (0: skip)."
            ),
        ] = 300.0,
        reason: Reason = "",
        yes: Yes = False,
        dry_run: DryRun = False,
    ) -> None:
        """Stop new work reaching the agent (event source mappings, EventBridge rules and
        schedules disabled), wait for in-flight work, and with --divert move what is queued to
        the review queues (each message leaves its work queue only once its copy is in review).
        Records every before-state; disables, never deletes a resource; resume undoes it."""
        run_drain(
            ctx, agent, divert=divert, timeout=timeout, reason=reason, yes=yes, dry_run=dry_run
        )


def run_drain(
    ctx: typer.Context,
    agent: str,
    *,
    divert: bool,
    timeout: float,
    reason: str,
    yes: bool,
    dry_run: bool,
) -> None:
    from agentctl.cli import render
    from agentctl.cli.confirm import confirm
    from agentctl.drain.service import DrainReport
    from agentctl.engine.runner import dry_run_result
    from agentctl.errors import ExitCode

    g = globals_of(ctx)
    ac = g.agentctl()
    drain = ac.plan_drain(agent, divert=divert)
    queued = sum(c.queued for c in drain.counts.values())
    if dry_run:
        result = dry_run_result(drain.plan)
        report = DrainReport(plan=drain, run=result)
        if g.json:
            render.print_json(report.to_dict())
        else:
            render.show_plan(drain.plan)
            _show_queues(render.console(), drain, None, dry_run=True)
            _show_problems(render.console(), report.problems)
        code = report.exit_code
        raise typer.Exit(int(code if code is not ExitCode.GATE_FAILED else ExitCode.OK))
    if drain.plan.changes or (divert and queued):
        if not g.json:
            render.show_plan(drain.plan)
            _show_queues(render.console(), drain, None, dry_run=True)
        question = f"Disable {len(drain.plan.changes)} intake lever(s) of {agent}"
        if divert:
            question += f" and divert {queued} queued message(s) to review"
        confirm(question + "?", yes=yes, as_json=g.json, what=f"drain {agent}")
    if drain.plan.incident is None:
        drain.plan.incident = ac.find_open(agent)
    if drain.plan.changes or divert or drain.plan.incident is not None or drain.plan.errors:
        run = ac.execute(drain.plan, reason=reason)
    else:
        run = dry_run_result(drain.plan)
        run.dry_run = False
    report = DrainReport(plan=drain, run=run)
    live = not g.json and sys.stdout.isatty()
    if timeout > 0:
        report.wait = _wait(ac, drain, timeout, live)
    if divert:
        report.moves = _divert(ac, drain, run, reason, live)
    if g.json:
        render.print_json(report.to_dict())
    else:
        _show_report(report)
    raise typer.Exit(int(report.exit_code))


def _wait(ac: Any, drain: "DrainPlan", timeout: float, live: bool) -> Any:
    if not live:
        return ac.wait_in_flight(drain, timeout=timeout)
    from rich.live import Live

    from agentctl.cli import render

    started = ac.engine.clock.monotonic()
    with Live(console=render.console(), transient=True, refresh_per_second=4) as view:

        def on_poll(reading: "InFlight") -> None:
            elapsed = ac.engine.clock.monotonic() - started
            view.update(_in_flight_table(reading, elapsed, timeout))

        return ac.wait_in_flight(drain, timeout=timeout, on_poll=on_poll)


def _in_flight_table(reading: "InFlight", elapsed: float, timeout: float) -> Any:
    from rich.table import Table

    table = Table(
        title=f"waiting for in-flight work: {elapsed:.0f}s of {timeout:g}s", title_justify="left"
    )
    table.add_column("source")
    table.add_column("in flight", justify="right")
    table.add_column("queued", justify="right")
    for name, c in reading.queues.items():
        table.add_row(f"queue {name}", str(c.in_flight), str(c.queued))
    for name, n in reading.functions.items():
        table.add_row(f"function {name}", "no data" if n is None else str(n), "-")
    for name, error in reading.errors.items():
        table.add_row(name, "?", error)
    return table


def _divert(
    ac: Any, drain: "DrainPlan", run: "RunResult", reason: str, live: bool
) -> "list[QueueMove]":
    if not live:
        moves: list[QueueMove] = ac.divert(drain, run, reason=reason)
        return moves
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from agentctl.cli import render

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=render.console(),
        transient=True,
    ) as progress:
        tasks = {
            name: progress.add_task(f"divert {name}", total=c.queued or None)
            for name, c in drain.counts.items()
        }

        def on_progress(name: str, result: Any) -> None:
            task = tasks.get(name)
            if task is not None:
                progress.update(task, completed=result.moved + result.finished)

        moves = ac.divert(drain, run, reason=reason, on_progress=on_progress)
        return moves


def _show_queues(
    out: "Console", drain: "DrainPlan", report: "DrainReport | None", *, dry_run: bool
) -> None:
    from rich.table import Table

    if not drain.intake.queues:
        return
    table = Table(title="queues", title_justify="left")
    table.add_column("queue")
    table.add_column("queued", justify="right")
    table.add_column("in flight", justify="right")
    table.add_column("review queue")
    if report is not None:
        table.add_column("moved", justify="right")
        table.add_column("left", justify="right")
    moves = {m.queue: m for m in report.moves} if report else {}
    for pair in drain.intake.queues:
        name = pair.work.name if pair.work else pair.spec_name
        before = drain.counts.get(name)
        review = pair.review.name if pair.review else ("-" if not pair.review_error else "?")
        row = [
            name,
            str(before.queued) if before else "?",
            str(before.in_flight) if before else "?",
            review,
        ]
        if report is not None:
            move = moves.get(name)
            result = move.result if move else None
            row.append(str(result.moved + result.finished) if result else "-")
            row.append(str(result.left.queued) if result and result.left else "-")
        table.add_row(*row)
    out.print(table)
    if dry_run and drain.divert:
        out.print(
            f"--divert: {sum(c.queued for c in drain.counts.values())} queued message(s) "
            "would move to review (exactly once; originals deleted only after the copy is sent)"
        )


def _show_problems(out: "Console", problems: list[str]) -> None:
    from rich.text import Text

    for problem in problems:
        out.print(Text(f"problem: {problem}", style="red"))


def _show_report(report: "DrainReport") -> None:
    from rich.text import Text

    from agentctl.cli import render

    out = render.console()
    if report.run.results:
        render.show_result(report.run)
    if report.moves:
        _show_queues(out, report.plan, report, dry_run=False)
    if report.wait is not None:
        w = report.wait
        if w.done:
            out.print(f"in-flight work finished (waited {w.waited_s:.0f}s)")
        else:
            busy = ", ".join(
                [f"{k}: {c.in_flight} in flight" for k, c in w.last.queues.items() if c.in_flight]
                + [f"{k}: {n} running" for k, n in w.last.functions.items() if n]
            )
            out.print(
                Text(f"timed out after {w.timeout_s:g}s with work in flight ({busy})", "yellow")
            )
    for move in report.moves:
        if move.result is not None:
            r = move.result
            line = f"diverted {r.moved} message(s) {r.source} → {r.dest} in {r.seconds:.1f}s"
            if r.finished:
                line += f"; finished {r.finished} sent by an interrupted run (not sent twice)"
            if r.resent:
                line += f"; {r.resent} re-sent after an interrupted send (may appear twice)"
            out.print(line)
    _show_problems(out, report.problems)
    code = int(report.exit_code)
    if code:
        out.print(Text(f"exit {code}: {_EXIT.get(code, '')}", style="bold red"))


_EXIT = {
    1: "failed: nothing was changed",
    3: "partially done: fix the problems above and re-run the same command to finish",
    4: "in-flight work did not finish within --timeout (intake stays disabled)",
}


# -- resume --redrive ------------------------------------------------------------------------
def resume_with_redrive(
    ctx: typer.Context, agent: str, *, yes: bool, dry_run: bool, reason: str
) -> None:
    """``resume AGENT --redrive``: restore the levers, then offer to move the messages drain
    diverted back from the review queues to the work queues."""
    from agentctl.cli import render
    from agentctl.cli.confirm import confirm
    from agentctl.engine.runner import dry_run_result
    from agentctl.errors import ExitCode

    g = globals_of(ctx)
    ac = g.agentctl()
    plan = ac.plan_resume(agent)
    redrive = ac.plan_redrive(agent)
    if dry_run:
        result = dry_run_result(plan)
        if g.json:
            render.print_json({**result.to_dict(), "redrive": _redrive_plan_dict(redrive)})
        else:
            render.show_plan(plan)
            _show_redrive_plan(render.console(), redrive)
        raise typer.Exit(int(result.exit_code))
    if not g.json:
        if plan.changes:
            render.show_plan(plan)
        _show_redrive_plan(render.console(), redrive)
    if plan.changes:
        n = len(plan.changes)
        confirm(
            f"Apply {n} change{'s' if n != 1 else ''} to {agent}?",
            yes=yes,
            as_json=g.json,
            what=f"resume {agent}",
        )
    if redrive.waiting:
        confirm(
            f"Move up to {redrive.waiting} reviewed message(s) back to the work queue(s)?",
            yes=yes,
            as_json=g.json,
            what=f"redrive {agent}",
        )
    result = ac.execute(plan, reason=reason)
    moves = ac.redrive(redrive, result, reason=reason) if redrive.waiting else []
    problems = [p.message for p in redrive.problems]
    for move in moves:
        if move.error is not None:
            problems.append(move.error.message)
        elif move.result is not None and move.result.error is not None:
            problems.append(move.result.error.message)
        elif move.result is not None and move.result.failed:
            problems.append(f"{move.queue}: {len(move.result.failed)} message(s) not moved back")
    code = result.exit_code
    if problems and code in (ExitCode.OK, ExitCode.GATE_FAILED):
        code = ExitCode.PARTIAL
    if g.json:
        payload = result.to_dict()
        payload.update(
            exit_code=int(code),
            redrive={"moves": [m.to_dict() for m in moves], "problems": problems},
        )
        render.print_json(payload)
    else:
        render.show_result(result)
        out = render.console()
        for move in moves:
            if move.result is not None:
                r = move.result
                out.print(
                    f"moved {r.moved + r.finished} reviewed message(s) {r.source} → {r.dest}"
                    + (f"; left {r.skipped} not diverted from {r.dest}" if r.skipped else "")
                )
        _show_problems(out, problems)
    raise typer.Exit(int(code))


def _redrive_plan_dict(plan: "RedrivePlan") -> dict[str, Any]:
    return {
        "review_queues": {k: v.to_dict() for k, v in plan.counts.items()},
        "waiting": plan.waiting,
        "problems": [p.message for p in plan.problems],
    }


def _show_redrive_plan(out: "Console", plan: "RedrivePlan") -> None:
    for name, c in plan.counts.items():
        out.print(f"--redrive: {c.queued} message(s) in review queue {name}")
    _show_problems(out, [p.message for p in plan.problems])
