"""Jinja templates shipped with agentctl (``templates/`` in the repo, ``agentctl/_data/templates``
in an installed wheel), rendered in a sandbox with data passed as variables, never as source."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agentctl.errors import AgentctlError


def templates_dir() -> Path:
    """The installed copy if there is one, else the repository's ``templates/``."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_data" / "templates", here.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise AgentctlError(
        "agentctl's templates are missing from this installation",
        hint="reinstall agentctl (pip install .)",
    )


def _md(value: Any) -> str:
    """A value as one table cell: JSON for structures, pipes and newlines escaped."""
    if value is None:
        return "-"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text.replace("|", "\\|").replace("\n", " ")


def render(name: str, **variables: Any) -> str:
    from jinja2 import FileSystemLoader, StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(
        loader=FileSystemLoader(str(templates_dir())),
        undefined=StrictUndefined,
        autoescape=False,  # markdown, not HTML; cells are escaped by the `md` filter
        keep_trailing_newline=True,
    )
    env.filters["md"] = _md
    return env.get_template(name).render(**variables)
