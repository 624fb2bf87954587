"""A release and its content-derived id; digests; floating model ids.

A release is the triple an agent's behaviour depends on: the exact model version, the prompt
template and the tool schema. Its id is derived from the content (``rel-`` + 12 hex digits of
SHA-256 over the canonical triple), so recording the same triple twice gives the same release.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from agentctl.errors import BadInputError

_DATE = re.compile(r"(?<!\d)(?:19|20)\d{2}-?(?:0[1-9]|1[0-2])-?(?:0[1-9]|[12]\d|3[01])(?!\d)")
_VERSION = re.compile(r"(?:-v\d+(?::\d+)?|:\d+|@\d+|-\d{3,})$")
_FLOATING_WORD = re.compile(
    r"(?:^|[-_.:/@])(?:latest|current|default|stable|preview|beta|live|newest)(?:$|[-_.:/@])",
    re.IGNORECASE,
)


class Mark(StrEnum):
    GOOD = "good"
    BAD = "bad"


def is_floating(model: str) -> bool:
    """Does ``model`` name a moving target (``...-latest``, ``gpt-4o``) rather than one exact
    version (a date like ``20240620`` or a version suffix like ``-v1:0`` / ``-002``)?"""
    if _FLOATING_WORD.search(model):
        return True
    return not (_DATE.search(model) or _VERSION.search(model))


def release_id(model: str, prompt_digest: str, tools_digest: str) -> str:
    text = json.dumps([model, prompt_digest, tools_digest], separators=(",", ":"))
    return "rel-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def digest_prompt(path: Path) -> str:
    """SHA-256 of the prompt template file's bytes."""
    try:
        return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise BadInputError(f"cannot read prompt template {path}: {exc.strerror}") from exc


def digest_tools(path: Path) -> str:
    """SHA-256 of the tool schema, canonicalised (JSON or YAML: key order and whitespace do not
    change the digest)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"cannot read tool schema {path}: {exc}") from exc
    try:
        import yaml

        data: Any = yaml.safe_load(text)
    except Exception as exc:
        raise BadInputError(f"tool schema {path} is neither JSON nor YAML: {exc}") from exc
    if not isinstance(data, dict | list):
        raise BadInputError(f"tool schema {path} must be a JSON/YAML object or list")
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Release:
    id: str
    agent: str
    model: str
    prompt_digest: str
    tools_digest: str
    recorded_at: datetime
    recorded_by: str
    function_version: str | None = None  # the Lambda version embodying it (alias pointers)
    floating: bool = False  # recorded with --force despite a floating model id
    mark: Mark | None = None
    marked_by: str | None = None
    note: str = ""

    @classmethod
    def build(
        cls,
        agent: str,
        model: str,
        prompt_digest: str,
        tools_digest: str,
        *,
        at: datetime,
        by: str,
        function_version: str | None = None,
        floating: bool = False,
        note: str = "",
    ) -> Release:
        return cls(
            id=release_id(model, prompt_digest, tools_digest),
            agent=agent,
            model=model,
            prompt_digest=prompt_digest,
            tools_digest=tools_digest,
            recorded_at=at,
            recorded_by=by,
            function_version=function_version,
            floating=floating,
            note=note,
        )

    def document(self) -> dict[str, Any]:
        """What the release pointer holds (the agent reads this)."""
        doc: dict[str, Any] = {
            "release_id": self.id,
            "model": self.model,
            "prompt_digest": self.prompt_digest,
            "tools_digest": self.tools_digest,
        }
        if self.function_version:
            doc["function_version"] = self.function_version
        return doc

    def marked(self, mark: Mark, by: str, note: str = "") -> Release:
        return replace(self, mark=mark, marked_by=by, note=note or self.note)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "agent": self.agent,
            "model": self.model,
            "prompt_digest": self.prompt_digest,
            "tools_digest": self.tools_digest,
            "recorded_at": self.recorded_at.isoformat(),
            "recorded_by": self.recorded_by,
            "function_version": self.function_version,
            "floating": self.floating,
            "mark": self.mark.value if self.mark else None,
            "marked_by": self.marked_by,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Release:
        return cls(
            id=data["id"],
            agent=data["agent"],
            model=data["model"],
            prompt_digest=data["prompt_digest"],
            tools_digest=data["tools_digest"],
            recorded_at=datetime.fromisoformat(data["recorded_at"]),
            recorded_by=data["recorded_by"],
            function_version=data.get("function_version"),
            floating=bool(data.get("floating")),
            mark=Mark(data["mark"]) if data.get("mark") else None,
            marked_by=data.get("marked_by"),
            note=data.get("note") or "",
        )
