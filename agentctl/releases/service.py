"""Recording, listing and marking releases (what ``agentctl releases ...`` calls)."""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentctl.errors import BadInputError
from agentctl.releases.catalog import ReleaseCatalog
from agentctl.releases.model import Mark, Release, digest_prompt, digest_tools, is_floating

if TYPE_CHECKING:
    from agentctl.ops import Agentctl


@dataclass
class Recorded:
    release: Release
    created: bool
    warnings: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "agentctl.release/v1",
            "release": self.release.to_dict(),
            "created": self.created,
            "warnings": self.warnings,
        }


@dataclass
class ReleaseList:
    agent: str
    releases: list[Release]
    active: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "agentctl.releases/v1",
            "agent": self.agent,
            "active": self.active,
            "releases": [r.to_dict() | {"active": r.id == self.active} for r in self.releases],
        }


class Releases:
    def __init__(self, ac: Agentctl) -> None:
        self.ac = ac

    @property
    def catalog(self) -> ReleaseCatalog:
        from agentctl.compensate.rollback import catalog_for

        return catalog_for(self.ac.store)

    def record(
        self,
        agent: str,
        *,
        model: str,
        prompt: Path,
        tools: Path,
        function_version: str | None = None,
        force: bool = False,
        note: str = "",
    ) -> Recorded:
        spec = self.ac.spec(agent)
        warnings: list[str] = []
        floating = is_floating(model)
        if floating:
            message = (
                f"model id {model!r} floats (an alias such as `latest`, or no version/date): "
                "the behaviour of this release may not be reproducible later"
            )
            if not force:
                raise BadInputError(
                    message,
                    hint="record the exact model version (e.g. with a date or -v1:0 suffix), "
                    "or pass --force to record it anyway",
                )
            warnings.append(message)
        if spec.release is not None and spec.release.function and not function_version:
            raise BadInputError(
                f"{agent}'s release pointer is a Lambda alias: give --function-version",
                hint="the function version that runs this model + prompt + tool schema",
            )
        release = Release.build(
            agent,
            model,
            digest_prompt(prompt),
            digest_tools(tools),
            at=self.ac.engine.clock.now(),
            by=_who(self.ac),
            function_version=function_version,
            floating=floating,
            note=note,
        )
        stored, created = self.catalog.record(release)
        if not created and stored.function_version != release.function_version:
            warnings.append(
                f"{stored.id} was recorded before with function version "
                f"{stored.function_version}; kept"
            )
        return Recorded(stored, created, warnings)

    def list(self, agent: str) -> ReleaseList:
        spec = self.ac.spec(agent)
        active = None
        if spec.release is not None:
            from agentctl.compensate.rollback import Rollback

            active = Rollback(self.ac)._current_release(spec)
        return ReleaseList(agent, self.catalog.list(agent), active)

    def mark(self, agent: str, ident: str, *, good: bool, note: str = "") -> Release:
        self.ac.spec(agent)
        return self.catalog.mark(
            agent, ident, Mark.GOOD if good else Mark.BAD, by=_who(self.ac), note=note
        )


def _who(ac: Agentctl) -> str:
    try:
        return ac.engine.user or getpass.getuser()
    except Exception:
        return "unknown"
