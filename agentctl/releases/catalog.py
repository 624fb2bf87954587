"""The release history of each agent, with good / bad marks, kept in the agentctl store.

Backends: the SQLite file (a ``releases`` table) and the DynamoDB table (items under
``RELEASES#agent``). Recording is idempotent: the id is content-derived, and a second record of
the same triple keeps the first entry (and its mark).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any

from agentctl.errors import BadInputError
from agentctl.releases.model import Mark, Release


class ReleaseCatalog(ABC):
    @abstractmethod
    def _put_new(self, release: Release) -> bool:
        """Insert if the id is new for the agent; True if inserted."""

    @abstractmethod
    def _replace(self, release: Release) -> None: ...

    @abstractmethod
    def _all(self, agent: str) -> list[Release]: ...

    @abstractmethod
    def _everyone(self) -> list[Release]:
        """Every agent's releases (for finding a release by id alone)."""

    def agent_of(self, ident: str) -> str:
        """The agent a release id (or unique prefix) belongs to."""
        agents = sorted({r.agent for r in self._everyone() if r.id.startswith(ident)})
        if len(agents) == 1:
            return agents[0]
        if not agents:
            raise BadInputError(
                f"no release {ident!r} recorded", hint="`agentctl releases list AGENT`"
            )
        raise BadInputError(
            f"release {ident!r} is recorded for several agents: {', '.join(agents)}",
            hint="pass --agent",
        )

    def record(self, release: Release) -> tuple[Release, bool]:
        created = self._put_new(release)
        return self.get(release.agent, release.id), created

    def list(self, agent: str) -> list[Release]:
        """Newest first."""
        return sorted(self._all(agent), key=lambda r: (r.recorded_at, r.id), reverse=True)

    def get(self, agent: str, ident: str) -> Release:
        """By id or unique id prefix (``rel-3f2a``)."""
        found = [r for r in self._all(agent) if r.id == ident]
        if not found:
            found = [r for r in self._all(agent) if r.id.startswith(ident)]
        if len(found) == 1:
            return found[0]
        if not found:
            raise BadInputError(
                f"{agent} has no release {ident!r}",
                hint=f"`agentctl releases list {agent}` shows the recorded ones",
            )
        raise BadInputError(f"release id {ident!r} is ambiguous: {', '.join(r.id for r in found)}")

    def mark(self, agent: str, ident: str, mark: Mark, *, by: str, note: str = "") -> Release:
        release = self.get(agent, ident).marked(mark, by, note)
        self._replace(release)
        return release

    def last_known_good(self, agent: str, *, excluding: str | None = None) -> Release:
        for release in self.list(agent):
            if release.mark is Mark.GOOD and release.id != excluding:
                return release
        raise BadInputError(
            f"{agent} has no release marked good"
            + (f" other than the active {excluding}" if excluding else ""),
            hint="mark one with `agentctl releases mark ID --good`, pass --to ID, or "
            "--no-release to only compensate",
        )


SCHEMA = """
CREATE TABLE IF NOT EXISTS releases (
    agent TEXT NOT NULL,
    id TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (agent, id)
);
"""


class SqliteCatalog(ReleaseCatalog):
    def __init__(self, store: Any) -> None:
        self.store = store
        with store.lock:
            store.conn.executescript(SCHEMA)

    def _put_new(self, release: Release) -> bool:
        with self.store.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO releases (agent, id, recorded_at, data) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(agent, id) DO NOTHING",
                (
                    release.agent,
                    release.id,
                    release.recorded_at.isoformat(),
                    json.dumps(release.to_dict()),
                ),
            )
            return bool(cursor.rowcount)

    def _replace(self, release: Release) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE releases SET data = ? WHERE agent = ? AND id = ?",
                (json.dumps(release.to_dict()), release.agent, release.id),
            )

    def _everyone(self) -> list[Release]:
        with self.store.lock:
            rows = self.store.conn.execute("SELECT data FROM releases").fetchall()
        return [Release.from_dict(json.loads(r[0])) for r in rows]

    def _all(self, agent: str) -> list[Release]:
        with self.store.lock:
            rows = self.store.conn.execute(
                "SELECT data FROM releases WHERE agent = ?", (agent,)
            ).fetchall()
        return [Release.from_dict(json.loads(r[0])) for r in rows]
