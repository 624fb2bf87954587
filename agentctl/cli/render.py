"""Rendering results: rich tables on a terminal, stable JSON for scripts.

rich is imported inside the functions that draw, never at import: a command run with
``-o json`` imports this module for :func:`print_json` and must not pay rich's start-up
(about 15 ms). ``tests/cli/test_startup_imports.py`` checks it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from agentctl.cli.jsonout import print_json  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from agentctl.engine.model import Plan, RunResult
    from agentctl.incidents.models import Incident, JournalEntry
    from agentctl.ops import StatusReport

OUTCOME_STYLE = {
    "applied": "green",
    "noop": "dim",
    "planned": "yellow",
    "propagating": "yellow",
    "failed": "bold red",
    "skipped": "red",
}
EXIT_MEANING = {
    0: "done",
    1: "failed: nothing was changed by the failed steps",
    2: "bad input",
    3: "partially applied: re-run the same command to finish",
    4: "a check failed",
}


def plain(value: object) -> Text:
    """Data as a table cell: never parsed as rich markup (a reason like "[/x]" is just text)."""
    from rich.text import Text

    return Text("" if value is None else str(value))


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    width = int(os.environ["COLUMNS"]) if os.environ.get("COLUMNS", "").isdigit() else None
    # markup=False: agent data (a subject "[URGENT] ...", a reason "[/ticket]") is never parsed
    # as rich markup; styling is given with Text / style=, never inside strings.
    return Console(stderr=stderr, highlight=False, width=width, soft_wrap=False, markup=False)


def plan_table(plan: Plan) -> Table:
    from rich.table import Table
    from rich.text import Text

    title = f"{plan.phase} {plan.agent}: plan"
    if plan.incident:
        title += f" (incident {plan.incident.id})"
    table = Table(title=title, title_justify="left", expand=False)
    table.add_column("step")
    table.add_column("target", overflow="fold")
    table.add_column("now", overflow="fold")
    table.add_column("change", overflow="fold")
    for planned in plan.steps:
        try:
            target = planned.step.target
        except Exception:
            target = "?"
        now = planned.step.describe_state(planned.before) if planned.before is not None else "-"
        if planned.error is not None:
            change = Text(f"cannot read: {planned.error.message}", style="red")
        elif planned.change is None:
            change = Text("no change (already in place)", style="dim")
        else:
            change = Text(planned.change)
        table.add_row(plain(planned.name), plain(target), plain(now), change)
    return table


def show_plan(plan: Plan) -> None:
    out = console()
    out.print(plan_table(plan))
    changes = len(plan.changes)
    out.print(
        plain(
            f"{changes} change{'s' if changes != 1 else ''} to make, "
            f"{len(plan.steps) - changes - len(plan.errors)} already in place"
            + (f", {len(plan.errors)} unreadable" if plan.errors else "")
            + f"  (read in {plan.read_ms:.0f} ms as {plan.operator.arn})"
        )
    )


def show_result(result: RunResult) -> None:
    from rich.table import Table
    from rich.text import Text

    out = console()
    title = f"{result.plan.phase} {result.plan.agent}"
    if result.dry_run:
        title += ": dry run, nothing changed"
    table = Table(title=title, title_justify="left")
    table.add_column("step")
    table.add_column("target", overflow="fold")
    table.add_column("outcome")
    table.add_column("time", justify="right")
    table.add_column("detail", overflow="fold")
    for r in result.results:
        detail: Text
        if r.error:
            detail = Text(r.error + (f" (hint: {r.hint})" if r.hint else ""), style="red")
        elif r.outcome.value == "noop":
            detail = Text("already in place", style="dim")
        else:
            detail = Text(r.change or "")
        table.add_row(
            plain(r.name),
            plain(r.target),
            Text(r.outcome.value, style=OUTCOME_STYLE.get(r.outcome.value, "")),
            f"{r.duration_ms:.0f} ms",
            detail,
        )
    out.print(table)
    code = int(result.exit_code)
    summary = f"total {result.total_ms:.0f} ms"
    if result.incident is not None and not result.dry_run:
        verb = "opened" if result.incident_opened else "joined"
        summary += f" · incident {result.incident.id} ({verb})"
    if result.dry_run:
        summary += (
            f" · {sum(1 for r in result.results if r.outcome.value == 'planned')} would change"
        )
    elif not result.changed and code == 0:
        summary += " · nothing to change: already in place"
    else:
        summary += f" · {len(result.changed)} changed"
    if result.failed:
        summary += f" · {len(result.failed)} not done"
    out.print(plain(summary))
    if code and not result.dry_run:
        out.print(Text(f"exit {code}: {EXIT_MEANING.get(code, '')}", style="bold red"))


def show_status(report: StatusReport) -> None:
    from rich.table import Table
    from rich.text import Text

    out = console()
    table = Table(title=plain(f"status {report.agent}: {report.overall}"), title_justify="left")
    table.add_column("lever")
    table.add_column("target", overflow="fold")
    table.add_column("state")
    table.add_column("detail", overflow="fold")
    styles = {
        "live": "green",
        "contained": "bold red",
        "partial": "red",
        "drained": "bold red",
        "shadow": "yellow",
        "unknown": "red",
    }
    for lever in report.levers:
        table.add_row(
            plain(lever.lever),
            plain(lever.target),
            Text(lever.state.value, style=styles.get(lever.state.value, "")),
            plain(lever.error or lever.detail),
        )
    out.print(table)
    if report.incident:
        since = f"{report.incident.opened_at:%Y-%m-%d %H:%M:%S}Z"
        out.print(plain(f"open incident {report.incident.id} since {since}"))
    else:
        out.print("no open incident")


def show_incidents(incidents: list[Incident]) -> None:
    from rich.table import Table

    out = console()
    if not incidents:
        out.print("no incidents")
        return
    table = Table(title="incidents", title_justify="left")
    for column in ("id", "agent", "status", "opened", "by", "reason"):
        table.add_column(column, overflow="fold")
    for incident in incidents:
        table.add_row(
            *map(
                plain,
                (
                    incident.id,
                    incident.agent,
                    incident.status.value,
                    f"{incident.opened_at:%Y-%m-%d %H:%M:%S}Z",
                    incident.opened_by,
                    incident.reason,
                ),
            )
        )
    out.print(table)


def show_timeline(incident: Incident, entries: list[JournalEntry]) -> None:
    from rich.table import Table
    from rich.text import Text

    out = console()
    out.print(
        Text.assemble(
            (incident.id, "bold"),
            f" {incident.agent} · {incident.status.value} · opened "
            f"{incident.opened_at:%Y-%m-%d %H:%M:%S}Z by {incident.opened_by}"
            + (f" · reason: {incident.reason}" if incident.reason else ""),
        )
    )
    table = Table(title="timeline", title_justify="left")
    for column in ("#", "time", "phase", "event", "step", "target", "detail", "request ids"):
        table.add_column(column, overflow="fold")
    for e in entries:
        detail = e.error or e.message
        table.add_row(
            plain(e.seq),
            plain(f"{e.at:%H:%M:%S.%f}"[:-3]),
            plain(e.phase),
            Text(e.event.value, style="red" if "fail" in e.event.value else ""),
            plain(e.step),
            plain(e.target),
            plain(detail),
            plain(", ".join(e.request_ids)),
        )
    out.print(table)
