"""Every command has help text and is documented in the README (after sqlite-utils)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from agentctl.cli.main import app

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _commands() -> list[tuple[str, object]]:
    root = typer.main.get_command(app)
    found: list[tuple[str, object]] = []

    def walk(group: object, prefix: str) -> None:
        for name, command in sorted(getattr(group, "commands", {}).items()):
            path = f"{prefix} {name}".strip()
            found.append((path, command))
            walk(command, path)

    walk(root, "")
    return found


COMMANDS = _commands()


def test_the_command_tree_is_what_we_document() -> None:
    names = {path for path, _ in COMMANDS}
    assert {"contain", "shadow", "resume", "status", "incidents list", "runbook schema"} <= names


@pytest.mark.parametrize("path,command", COMMANDS, ids=[p for p, _ in COMMANDS])
def test_command_has_help(path: str, command: object) -> None:
    text = (getattr(command, "help", None) or getattr(command, "short_help", None) or "").strip()
    assert text, f"`agentctl {path}` has no help text"


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS])
def test_command_is_in_readme(path: str) -> None:
    assert f"agentctl {path}" in README, f"`agentctl {path}` is not documented in README.md"


@pytest.mark.parametrize("path,command", COMMANDS, ids=[p for p, _ in COMMANDS])
def test_every_option_is_in_readme(path: str, command: object) -> None:
    for param in getattr(command, "params", []):
        for opt in getattr(param, "opts", []):
            if opt.startswith("--") and opt not in ("--help",):
                assert opt in README, f"`{opt}` of `agentctl {path}` is not in README.md"


def test_global_options_and_exit_codes_are_documented() -> None:
    from agentctl.errors import ExitCode

    for option in (
        "--profile",
        "--region",
        "--endpoint-url",
        "--runbooks-dir",
        "--store",
        "--output",
    ):
        assert option in README
    for code in ExitCode:
        assert f"| {int(code)} |" in README, f"exit code {int(code)} is not in the README table"
