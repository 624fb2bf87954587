"""contain, shadow, resume, status: the kill switch."""

from typing import Annotated

import typer

from agentctl.cli.context import globals_of
from agentctl.cli.errors import boundary

Yes = Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Show the plan; change nothing.")]
Reason = Annotated[
    str, typer.Option("--reason", "-r", help="Why: recorded in the incident journal.")
]
Agent = Annotated[str, typer.Argument(help="Agent name: runbooks/AGENT.yaml.")]


def run_plan(
    ctx: typer.Context, plan: object, *, yes: bool, dry_run: bool, reason: str, what: str
) -> None:
    """Show the plan, confirm, execute, render, exit with the run's code. Shared by commands.

    Nothing to change: no question is asked; the no-op is journaled in the open incident if
    there is one (a run with nothing to do never opens an incident).
    """
    from agentctl.cli.confirm import confirm
    from agentctl.cli.jsonout import print_json
    from agentctl.engine.model import Plan
    from agentctl.engine.runner import dry_run_result

    assert isinstance(plan, Plan)
    g = globals_of(ctx)
    ac = g.agentctl()
    if dry_run:
        result = dry_run_result(plan)
    elif plan.changes:
        if not g.json:
            from agentctl.cli import render

            render.show_plan(plan)
        n = len(plan.changes)
        confirm(
            f"Apply {n} change{'s' if n != 1 else ''} to {plan.agent}?",
            yes=yes,
            as_json=g.json,
            what=what,
        )
        result = ac.execute(plan, reason=reason)
    else:
        if plan.incident is None:
            plan.incident = ac.find_open(plan.agent)
        if plan.incident is not None or plan.errors:
            result = ac.execute(plan, reason=reason)
        else:
            result = dry_run_result(plan)
            result.dry_run = False
    if g.json:
        print_json(result.to_dict())
    else:
        from agentctl.cli import render

        if dry_run:
            render.show_plan(plan)
        render.show_result(result)
    raise typer.Exit(int(result.exit_code))


def register(app: typer.Typer) -> None:
    @app.command()
    @boundary
    def contain(
        ctx: typer.Context,
        agent: Agent,
        tools: Annotated[
            str | None,
            typer.Option("--tools", "-t", help="Only these tools (comma-separated); default all."),
        ] = None,
        hard: Annotated[
            bool, typer.Option("--hard", help="Also set reserved concurrency 0 on its functions.")
        ] = False,
        revoke_sessions: Annotated[
            bool,
            typer.Option(
                "--revoke-sessions",
                help="Also deny every action to credentials issued before now.",
            ),
        ] = False,
        reason: Reason = "",
        yes: Yes = False,
        dry_run: DryRun = False,
    ) -> None:
        """Revoke the agent's tools now: IAM explicit deny, tool registry off (and with --hard,
        reserved concurrency 0). Records every before-state; deletes nothing."""
        from agentctl.engine.phases import ContainOptions

        selected = [t.strip() for t in tools.split(",") if t.strip()] if tools else None
        plan = (
            globals_of(ctx)
            .agentctl()
            .plan_contain(
                agent, ContainOptions(tools=selected, hard=hard, revoke_sessions=revoke_sessions)
            )
        )
        run_plan(ctx, plan, yes=yes, dry_run=dry_run, reason=reason, what=f"contain {agent}")

    @app.command()
    @boundary
    def shadow(
        ctx: typer.Context,
        agent: Agent,
        off: Annotated[
            bool, typer.Option("--off", help="Leave shadow mode: restore the recorded mode.")
        ] = False,
        reason: Reason = "",
        yes: Yes = False,
        dry_run: DryRun = False,
    ) -> None:
        """Flip the agent to shadow mode: it keeps reasoning, its actions are recorded, not run."""
        plan = globals_of(ctx).agentctl().plan_shadow(agent, off=off)
        what = f"take {agent} out of shadow mode" if off else f"put {agent} in shadow mode"
        run_plan(ctx, plan, yes=yes, dry_run=dry_run, reason=reason, what=what)

    @app.command()
    @boundary
    def resume(
        ctx: typer.Context,
        agent: Agent,
        redrive: Annotated[
            bool,
            typer.Option(
                "--redrive",
                help="Also offer to move the messages drain diverted back to the work queues.",
            ),
        ] = False,
        reason: Reason = "",
        yes: Yes = False,
        dry_run: DryRun = False,
    ) -> None:
        """Lift containment: restore every target the open incident changed to its exact
        before-state (things disabled before the incident stay disabled)."""
        if redrive:
            from agentctl.cli.drain_cmds import resume_with_redrive

            resume_with_redrive(ctx, agent, yes=yes, dry_run=dry_run, reason=reason)
        plan = globals_of(ctx).agentctl().plan_resume(agent)
        run_plan(ctx, plan, yes=yes, dry_run=dry_run, reason=reason, what=f"resume {agent}")

    @app.command()
    @boundary
    def status(ctx: typer.Context, agent: Agent) -> None:
        """Read every lever back from AWS: live, contained or shadow, lever by lever."""
        g = globals_of(ctx)
        report = g.agentctl().status(agent)
        if g.json:
            from agentctl.cli.jsonout import print_json

            print_json(report.to_dict())
        else:
            from agentctl.cli import render

            render.show_status(report)
