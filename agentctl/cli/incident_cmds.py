"""incidents list / show / close."""

from typing import Annotated

import typer

from agentctl.cli.context import globals_of
from agentctl.cli.errors import boundary

app = typer.Typer(
    help="Incidents and their journal (the timeline of every change).", no_args_is_help=True
)


@app.command("list")
@boundary
def list_(
    ctx: typer.Context,
    agent: Annotated[str | None, typer.Option("--agent", "-a", help="Only this agent.")] = None,
    open_only: Annotated[bool, typer.Option("--open", help="Only open incidents.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 50,
) -> None:
    """List incidents, newest first."""
    from agentctl.cli import render
    from agentctl.incidents.models import IncidentStatus

    g = globals_of(ctx)
    incidents = g.agentctl().incidents(
        agent, IncidentStatus.OPEN if open_only else None, limit=limit
    )
    if g.json:
        render.print_json(
            {"schema": "agentctl.incidents/v1", "incidents": [i.to_dict() for i in incidents]}
        )
    else:
        render.show_incidents(incidents)


@app.command()
@boundary
def show(
    ctx: typer.Context,
    incident_id: Annotated[str, typer.Argument(metavar="ID", help="e.g. INC-20261124-0001")],
    markdown: Annotated[
        bool, typer.Option("--markdown", help="A markdown report (for the channel or ticket).")
    ] = False,
) -> None:
    """Show an incident's timeline: who changed what, when, before and after, request ids."""
    from agentctl.cli import render

    g = globals_of(ctx)
    store = g.agentctl().store
    incident = store.get(incident_id)
    entries = store.journal(incident_id)
    if markdown:
        from agentctl.incidents.report import markdown as report

        print(report(incident, entries), end="")
    elif g.json:
        render.print_json(
            {
                "schema": "agentctl.incident/v1",
                "incident": incident.to_dict(),
                "journal": [e.to_dict() for e in entries],
            }
        )
    else:
        render.show_timeline(incident, entries)


@app.command()
@boundary
def close(
    ctx: typer.Context,
    incident_id: Annotated[str, typer.Argument(metavar="ID")],
    force: Annotated[
        bool, typer.Option("--force", help="Close even though targets are still changed.")
    ] = False,
) -> None:
    """Close an incident (refused while it still has changed targets: resume first).
    The next `contain` of that agent opens a new one."""
    import getpass

    from agentctl.cli import render

    g = globals_of(ctx)
    incident = g.agentctl().close_incident(incident_id, by=getpass.getuser(), force=force)
    if g.json:
        render.print_json(incident.to_dict())
    else:
        render.console().print(render.plain(f"{incident.id} closed"))
