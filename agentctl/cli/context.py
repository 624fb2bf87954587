"""Global options, and the objects commands build from them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from agentctl.aws import Aws
    from agentctl.ops import Agentctl


class Output(StrEnum):
    TEXT = "text"
    JSON = "json"


@dataclass
class Globals:
    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    runbooks_dir: str | None = None
    store: str | None = None
    output: Output = Output.TEXT
    _made: list[Agentctl] = field(default_factory=list, repr=False, compare=False)

    @property
    def json(self) -> bool:
        return self.output is Output.JSON

    def aws(self) -> Aws:
        from agentctl.aws import Aws, AwsSettings

        return Aws(
            AwsSettings(
                profile=self.profile,
                region=self.region,
                endpoint_url=self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None,
            )
        )

    def agentctl(self) -> Agentctl:
        from agentctl.ops import Agentctl

        made = Agentctl(self.aws(), runbooks_dir=self.runbooks_dir, store=self.store)
        self._made.append(made)
        return made

    def close(self) -> None:
        """Close the stores this invocation's commands opened (at the end of the command),
        saying on stderr when steps that timed out still run (their journal entries come when
        they end: the command waits for them)."""
        made, self._made[:] = list(self._made), []
        failed: list[BaseException] = []
        for m in made:  # each closed, whatever the others do
            try:
                m.close(notify=_waiting)
            except BaseException as exc:  # re-raised below, once all are closed
                failed.append(exc)
        if failed:
            raise failed[0]


def _waiting(running: int) -> None:
    steps = "1 step is" if running == 1 else f"{running} steps are"
    typer.echo(
        f"waiting: {steps} still running (timed out, or left when the command stopped); the "
        "journal records how each ends (its AWS calls end on their own timeouts)",
        err=True,
    )


_CURRENT: list[Globals] = []


def set_current(value: Globals) -> None:
    _CURRENT[:] = [value]


def current() -> Globals:
    """The global options of this invocation (defaults before the root callback ran)."""
    return _CURRENT[0] if _CURRENT else Globals()


def globals_of(ctx: typer.Context) -> Globals:
    """The global options, wherever this command sits in the command tree."""
    root = ctx.find_root()
    if isinstance(root.obj, Globals):
        return root.obj
    return current()


# Options that may be given before or after the command name: main() hoists them.
GLOBAL_OPTIONS_WITH_VALUE = frozenset(
    {"--profile", "--region", "--endpoint-url", "--runbooks-dir", "--store", "--output", "-o"}
)


def hoist_global_options(argv: list[str]) -> list[str]:
    """Move global options found after the command name to the front, so that
    ``agentctl contain refund-agent --profile prod`` works like ``agentctl --profile prod contain
    refund-agent``. Everything after ``--`` is left alone."""
    front: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            rest.extend(argv[index:])
            break
        name = arg.split("=", 1)[0]
        if name in GLOBAL_OPTIONS_WITH_VALUE:
            if "=" in arg:
                front.append(arg)
            elif index + 1 < len(argv):
                front.extend(argv[index : index + 2])
                index += 1
            else:
                rest.append(arg)  # let the parser report the missing value
        else:
            rest.append(arg)
        index += 1
    return front + rest
