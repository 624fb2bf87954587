"""The incident store interface and how a store URL is chosen.

A store keeps incidents and their append-only journal. The embedded default is an SQLite file in
the user's state directory; ``--store`` / ``AGENTCTL_STORE`` override it with a path,
``sqlite:///abs/path``.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from agentctl.errors import BadInputError
from agentctl.incidents.models import Incident, IncidentStatus, JournalEntry

if TYPE_CHECKING:
    from agentctl.aws import Aws

ENV_STORE = "AGENTCTL_STORE"


class IncidentStore(Protocol):
    def open_or_join(
        self, agent: str, *, at: datetime, by: str, reason: str = ""
    ) -> tuple[Incident, bool]:
        """The open incident of ``agent``, or a new one; the flag says whether it is new."""
        ...

    def find_open(self, agent: str) -> Incident | None: ...
    def get(self, incident_id: str) -> Incident: ...
    def list_incidents(
        self, *, agent: str | None = None, status: IncidentStatus | None = None, limit: int = 100
    ) -> list[Incident]: ...
    def close(self, incident_id: str, *, at: datetime, by: str) -> Incident: ...
    def append(self, entry: JournalEntry) -> JournalEntry:
        """Durably append one journal entry (committed before returning); return it with seq."""
        ...

    def journal(self, incident_id: str) -> list[JournalEntry]: ...
    def close_connection(self) -> None: ...


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/agentctl`` (``~/.local/state/agentctl``), or the macOS equivalent."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "agentctl"
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "agentctl"


def store_url(explicit: str | None = None) -> str:
    return explicit or os.environ.get(ENV_STORE) or str(default_state_dir() / "agentctl.db")


def sqlite_path(url: str | None = None) -> Path | None:
    """The file of an SQLite store URL (None for other stores)."""
    url = store_url(url)
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite://") :])
    return None if "://" in url else Path(url)


def open_store(url: str | None = None, *, aws: Aws | None = None) -> IncidentStore:
    """Open the store named by ``url`` (a path, ``sqlite:///path`` or ``dynamodb://TABLE``;
    DynamoDB uses ``aws``'s client)."""
    url = store_url(url)
    if url.startswith("dynamodb://"):
        from agentctl.aws import Aws as _Aws
        from agentctl.incidents.dynamodb import DynamoStore

        return DynamoStore.from_url(url, aws or _Aws())
    path = sqlite_path(url)
    if path is None:
        scheme = url.split("://", 1)[0]
        raise BadInputError(
            f"unsupported store {url!r}",
            hint=f"scheme {scheme!r} unknown; use a path, sqlite:/// or dynamodb://",
        )
    return _sqlite(path)


def _sqlite(path: Path) -> IncidentStore:
    from agentctl.incidents.sqlite import SqliteStore

    return SqliteStore(path)
