"""Step kinds by name: the ``action`` of a runbook step."""

from __future__ import annotations

from typing import Any

from agentctl.levers.base import Step

_KINDS: dict[str, type[Step[Any, Any]]] = {}


def register(cls: type[Step[Any, Any]]) -> type[Step[Any, Any]]:
    """Class decorator: make a step kind available to runbooks."""
    if cls.kind in _KINDS and _KINDS[cls.kind] is not cls:
        raise ValueError(f"step kind {cls.kind!r} registered twice")
    _KINDS[cls.kind] = cls
    return cls


def _load() -> None:
    # importing the lever modules registers their kinds
    from agentctl.levers import (  # noqa: F401
        generic,
        iam,
        intake,
        lambda_concurrency,
        release,
        ssm,
    )


def get(kind: str) -> type[Step[Any, Any]] | None:
    _load()
    return _KINDS.get(kind)


def kinds() -> list[str]:
    _load()
    return sorted(_KINDS)
