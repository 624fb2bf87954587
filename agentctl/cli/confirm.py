"""Asking before changing anything: questionary on a terminal, refusal without one."""

from __future__ import annotations

import sys

from agentctl.errors import AbortedError, NotConfirmedError


def confirm(question: str, *, yes: bool, as_json: bool, what: str) -> None:
    """Return if the operator agreed; raise otherwise. Never waits on a pipe."""
    if yes:
        return
    if as_json or not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise NotConfirmedError(
            f"refusing to {what} without confirmation: no terminal to ask on",
            hint="pass --yes to apply, or --dry-run to only see the plan",
        )
    import questionary

    answer = questionary.confirm(question, default=False).ask()
    if not answer:  # False, or None on Ctrl-C / end of input
        raise AbortedError("aborted: nothing was changed", hint="--dry-run shows the plan only")
