"""sandbox up / seed: a local AWS endpoint for demos, drills and trying things."""

from typing import Annotated

import typer

from agentctl.cli.context import globals_of
from agentctl.cli.errors import boundary

app = typer.Typer(
    help="A local AWS endpoint (moto) with the example agents' resources; no account needed.",
    no_args_is_help=True,
)


def _seed_all(ctx: typer.Context, agents: list[str] | None, endpoint: str | None) -> list[str]:
    from agentctl.aws import Aws, AwsSettings
    from agentctl.sandbox import seed
    from agentctl.spec.loader import load_agent, runbooks_dir

    g = globals_of(ctx)
    names = agents or sorted(p.stem for p in runbooks_dir(g.runbooks_dir).glob("*.yaml"))
    aws = Aws(AwsSettings(region=g.region or "us-east-1", endpoint_url=endpoint or g.endpoint_url))
    created: list[str] = []
    for name in names:
        created += seed(aws, load_agent(name, g.runbooks_dir)).created
    return created


@app.command()
@boundary
def up(
    ctx: typer.Context,
    port: Annotated[int, typer.Option("--port", "-p", help="Port on 127.0.0.1.")] = 4566,
    no_seed: Annotated[
        bool, typer.Option("--no-seed", help="Do not create the example agents' resources.")
    ] = False,
) -> None:
    """Run a local AWS endpoint on 127.0.0.1 until Ctrl-C, seeded with every agent's resources."""
    import os
    import signal
    import threading

    from agentctl.cli import render
    from agentctl.sandbox import SANDBOX_ENV, start_server

    os.environ.update(SANDBOX_ENV)
    server, url = start_server(port)
    # Ctrl-C and `kill` both stop it, even when started in the background of a script (a
    # non-interactive shell starts background jobs with SIGINT ignored, and Python keeps that).
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        created = [] if no_seed else _seed_all(ctx, None, url)
        out = render.console()
        out.print(f"sandbox running at {url} ({len(created)} resources created)")
        out.print("point agentctl at it in another shell:")
        for key, value in {**SANDBOX_ENV, "AWS_ENDPOINT_URL": url}.items():
            out.print(f"  export {key}={value}")
        out.print("Ctrl-C stops it (its state is in memory and goes with it).")
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        # Stopping waits for open connections; never let that keep the process alive.
        stopper = threading.Thread(target=server.stop, daemon=True)
        stopper.start()
        stopper.join(timeout=5)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@app.command("seed")
@boundary
def seed_cmd(
    ctx: typer.Context,
    agents: Annotated[
        list[str] | None, typer.Argument(help="Agents to seed; default every runbook.")
    ] = None,
) -> None:
    """Create the resources agent specs declare in the endpoint given by --endpoint-url.

    Refuses to run without an endpoint URL, so it never creates resources in a real account.
    """
    import os

    from agentctl.cli import render
    from agentctl.errors import BadInputError

    g = globals_of(ctx)
    endpoint = g.endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        raise BadInputError(
            "sandbox seed needs a local endpoint: pass --endpoint-url or set AWS_ENDPOINT_URL",
            hint="start one with `agentctl sandbox up`",
        )
    created = _seed_all(ctx, agents, endpoint)
    if g.json:
        render.print_json({"created": created})
    else:
        render.console().print("\n".join(created) or "everything already exists")
