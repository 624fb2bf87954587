"""The agentctl command line. Thin: parse, call the library, render.

Heavy modules (boto3, pydantic, rich tables) are imported inside commands so that ``--help``
stays fast.
"""

import os
import sys
from typing import Annotated

import typer

from agentctl import __version__
from agentctl.cli import (
    drain_cmds,
    incident_cmds,
    phase_cmds,
    rollback_cmds,
    runbook_cmds,
    sandbox_cmds,
    trace_cmds,
)
from agentctl.cli.context import Globals, Output, current, hoist_global_options, set_current

app = typer.Typer(
    name="agentctl",
    help="Incident response for AI agents in production: contain, drain, shadow, resume.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        print(f"agentctl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    profile: Annotated[
        str | None, typer.Option("--profile", envvar="AWS_PROFILE", help="AWS profile.")
    ] = None,
    region: Annotated[
        str | None, typer.Option("--region", help="AWS region (default: AWS_REGION / profile).")
    ] = None,
    endpoint_url: Annotated[
        str | None,
        typer.Option("--endpoint-url", envvar="AWS_ENDPOINT_URL", help="AWS endpoint URL."),
    ] = None,
    runbooks_dir: Annotated[
        str | None,
        typer.Option("--runbooks-dir", envvar="AGENTCTL_RUNBOOKS", help="Where AGENT.yaml live."),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option("--store", envvar="AGENTCTL_STORE", help="Incident store: path."),
    ] = None,
    output: Annotated[
        Output, typer.Option("--output", "-o", help="text (tables) or json (for scripts).")
    ] = Output.TEXT,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print version.")
    ] = False,
) -> None:
    """Global options may come before or after the command."""
    g = Globals(
        profile=profile,
        region=region,
        endpoint_url=endpoint_url,
        runbooks_dir=runbooks_dir,
        store=store,
        output=output,
    )
    set_current(g)
    ctx.obj = g


phase_cmds.register(app)
drain_cmds.register(app)
trace_cmds.register(app)
rollback_cmds.register(app)
app.add_typer(incident_cmds.app, name="incidents")
app.add_typer(runbook_cmds.app, name="runbook")
app.add_typer(sandbox_cmds.app, name="sandbox")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    # agentctl validates its specs with pydantic but uses no pydantic plugin; looking for
    # plugins scans the metadata of every installed package (about 80 ms in a full virtualenv).
    # A user who does want plugins sets the variable themselves (e.g. to an empty string).
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    args = hoist_global_options(list(sys.argv[1:] if argv is None else argv))
    try:
        app(args=args, prog_name="agentctl")
    finally:
        current().close()  # the incident store: its write-ahead log into the database file
        if argv is None:  # the process ends here (a caller passing argv may go on)
            _before_exit()


def _before_exit() -> None:
    """At exit, the interpreter's last garbage collections walk every object the imports built
    (pydantic's schemas, typer's commands, DuckDB's module): ~30 ms of every command. Freezing
    them first leaves the collector nothing to walk, so nothing may rely on it: the incident
    store was closed above, files and DuckDB connections are closed by their ``with`` blocks
    and ``finally`` clauses, and the atexit handlers and stream flushes still run."""
    import gc

    gc.freeze()
