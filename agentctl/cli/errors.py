"""The one boundary where errors become messages and exit codes."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from agentctl.errors import AgentctlError, ExitCode, SpecError

F = TypeVar("F", bound=Callable[..., Any])


def boundary(func: F) -> F:
    """Run a command; turn agentctl errors into one red line plus hint and the right exit code.

    Internal errors (bugs) print one line too, unless ``AGENTCTL_DEBUG=1`` asks for the traceback.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        as_json = _wants_json()
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except AgentctlError as exc:
            report(exc, as_json=as_json)
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            _err("interrupted: what was done is journaled; re-run the command to finish")
            raise typer.Exit(130) from None
        except Exception as exc:
            if os.environ.get("AGENTCTL_DEBUG"):
                raise
            _err(
                f"internal error: {type(exc).__name__}: {exc}",
                "this is a bug in agentctl; re-run with AGENTCTL_DEBUG=1 for the traceback",
            )
            raise typer.Exit(int(ExitCode.ERROR)) from None

    return wrapper  # type: ignore[return-value]


def report(exc: AgentctlError, *, as_json: bool) -> None:
    if as_json:
        payload: dict[str, Any] = {
            "error": exc.message,
            "hint": exc.hint,
            "exit_code": int(exc.exit_code),
        }
        if isinstance(exc, SpecError):
            payload["problems"] = [p.to_dict() for p in exc.problems]
        print(json.dumps(payload, indent=2))
    if isinstance(exc, SpecError):
        for problem in exc.problems:
            _err_plain(f"  {problem}")
    _err(exc.message, exc.hint)


def _wants_json() -> bool:
    from agentctl.cli.context import current

    return current().json


def _err(message: str, hint: str | None = None) -> None:
    color = sys.stderr.isatty() and not os.environ.get("NO_COLOR")
    red, dim, reset = ("\x1b[31m", "\x1b[2m", "\x1b[0m") if color else ("", "", "")
    sys.stderr.write(f"{red}error:{reset} {message}\n")
    if hint:
        sys.stderr.write(f"{dim}hint:{reset} {hint}\n")


def _err_plain(line: str) -> None:
    sys.stderr.write(line + "\n")
