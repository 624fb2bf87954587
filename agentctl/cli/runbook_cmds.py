"""runbook validate / schema."""

from pathlib import Path
from typing import Annotated

import typer

from agentctl.cli.context import globals_of
from agentctl.cli.errors import boundary

app = typer.Typer(help="Check agent specs and print their JSON Schema.", no_args_is_help=True)


@app.command()
@boundary
def validate(
    ctx: typer.Context,
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Spec files or directories; default the runbooks directory."),
    ] = None,
) -> None:
    """Validate agent specs; list every problem with file, line and field."""
    import sys

    from agentctl.cli import render
    from agentctl.errors import ExitCode, SpecError
    from agentctl.spec.loader import load_spec, runbooks_dir

    g = globals_of(ctx)
    files: list[Path] = []
    for path in paths or [runbooks_dir(g.runbooks_dir)]:
        if path.is_dir():
            files.extend(sorted([*path.glob("*.yaml"), *path.glob("*.yml")]))
        else:
            files.append(path)
    if not files:
        from agentctl.errors import BadInputError

        raise BadInputError("no spec files found", hint="pass files or a directory")
    report = []
    for file in files:
        try:
            spec = load_spec(file)
            report.append({"file": str(file), "agent": spec.name, "ok": True, "problems": []})
        except SpecError as exc:
            report.append(
                {
                    "file": str(file),
                    "agent": None,
                    "ok": False,
                    "problems": [p.to_dict() for p in exc.problems],
                }
            )
            if not g.json:
                for problem in exc.problems:
                    sys.stderr.write(f"{problem}\n")
    bad = [r for r in report if not r["ok"]]
    if g.json:
        render.print_json({"schema": "agentctl.validate/v1", "files": report})
    else:
        out = render.console()
        from rich.text import Text

        for r in report:
            mark = ("ok  ", "green") if r["ok"] else ("bad ", "red")
            out.print(Text.assemble(mark, f" {r['file']}"))
        out.print(f"{len(report) - len(bad)} valid, {len(bad)} invalid")
    if bad:
        raise typer.Exit(int(ExitCode.BAD_INPUT))


@app.command()
@boundary
def schema() -> None:
    """Print the JSON Schema of agent specs (for yaml-language-server and other editors)."""
    from agentctl.cli import render
    from agentctl.spec.loader import json_schema

    render.print_json(json_schema())
