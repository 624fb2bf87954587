"""The kill switch as the agent sees it: tool registry + shadow flag, read through a short cache.

``agentctl contain`` sets ``enabled: false`` on tool-registry entries; ``agentctl shadow`` sets the
shadow flag to ``shadow``. Both are SSM parameters. :class:`KillSwitch` reads them with one
``GetParameters`` call at most once per ``ttl`` seconds (default 1 s), so containment reaches a
running agent within about ``ttl`` plus one SSM round trip, with no redeploy.

Decisions (documented in the README):

- a tool with no entry in the registry is **enabled** (the registry lists what may be revoked);
  an entry without ``enabled`` is enabled; only ``enabled: false`` revokes;
- a registry or flag parameter that does not exist means nothing is revoked / ``live``;
- a shadow flag with any value other than ``live`` or ``shadow`` is treated as ``shadow``;
- when SSM cannot be read (network, AccessDenied, throttling) or the registry is not valid JSON,
  the last good state is used for up to ``max_stale`` seconds (default 30); after that, or when
  there never was a good read, the switch **fails closed**: every guarded call is refused
  (``fail_open=True`` flips that to: proceed live). An agent that cannot see its kill switch must
  not keep making refunds.

In asyncio code, :meth:`KillSwitch.astate` never blocks the event loop: a fresh cached state is
returned at once; a refresh (one ``GetParameters`` round trip through a synchronous boto3 client:
a blocking network read, bounded only by the client's connect/read timeouts and retries) runs in
a worker thread of the loop's default executor, and the tasks of one event loop that find the
cache stale at the same moment share that one refresh instead of each occupying a thread. A loop
closed while its refresh is still running (one managed by hand) is forgotten when the refresh
lands, and leaves no pending task behind.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

Monotonic = Callable[[], float]


@dataclass(frozen=True)
class SwitchState:
    """One read of the kill switch."""

    disabled: frozenset[str] = frozenset()
    shadow: bool = False
    ok: bool = True  # False: SSM unreadable and no usable cached state (fail closed/open)
    error: str | None = None

    def tool_enabled(self, tool: str) -> bool:
        return tool not in self.disabled


@dataclass
class SwitchStats:
    reads: int = 0
    errors: int = 0
    last_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class KillSwitch:
    """Reads the tool registry and shadow flag from SSM through a ``ttl``-second cache.

    ``ssm`` is a boto3 SSM client (passed in; the SDK never builds one). ``monotonic`` is the
    clock used for the cache (``time.monotonic`` by default; tests pass a fake).
    """

    def __init__(
        self,
        ssm: Any,
        *,
        registry_parameter: str | None = None,
        shadow_parameter: str | None = None,
        ttl: float = 1.0,
        max_stale: float = 30.0,
        fail_open: bool = False,
        monotonic: Monotonic = time.monotonic,
    ) -> None:
        self.ssm = ssm
        self.registry_parameter = registry_parameter
        self.shadow_parameter = shadow_parameter
        self.ttl = ttl
        self.max_stale = max_stale
        self.fail_open = fail_open
        self.monotonic = monotonic
        self.stats = SwitchStats()
        self._lock = threading.Lock()
        self._state: SwitchState | None = None
        self._read_at = float("-inf")
        self._good: SwitchState | None = None
        self._good_at = float("-inf")
        # one in-flight asyncio refresh per event loop (see astate)
        self._flights: dict[asyncio.AbstractEventLoop, asyncio.Future[SwitchState]] = {}
        self._flights_lock = threading.Lock()

    def state(self) -> SwitchState:
        """The current state; reads SSM when the cached one is older than ``ttl``."""
        now = self.monotonic()
        state = self._state
        if state is not None and now - self._read_at < self.ttl:
            return state
        with self._lock:
            if self._state is not None and now - self._read_at < self.ttl:
                return self._state
            state = self._refresh(now)
            self._state, self._read_at = state, now
            return state

    async def astate(self) -> SwitchState:
        """:meth:`state` for asyncio code, without blocking the event loop (module docstring)."""
        state = self._state
        if state is not None and self.monotonic() - self._read_at < self.ttl:
            return state
        import asyncio

        loop = asyncio.get_running_loop()
        with self._flights_lock:
            flight = self._flights.get(loop)
            if flight is None:
                # loops closed while their refresh was still running (loops managed by hand:
                # run_until_complete, then close) never see it land: forget them here
                for closed in [lp for lp in self._flights if lp.is_closed()]:
                    del self._flights[closed]
                flight = loop.run_in_executor(None, self._read_for, loop)
                self._flights[loop] = flight
        # shield: a caller that is cancelled must not cancel the refresh the others wait on.
        # The flight is a plain future, not a Task: if its loop is closed before it lands,
        # nothing is left pending to be destroyed with a warning.
        return await asyncio.shield(flight)

    def _read_for(self, loop: asyncio.AbstractEventLoop) -> SwitchState:
        """The worker-thread side of a flight: read, then free the loop's slot (even when the
        loop was closed meanwhile; the cache is fresh, so no new flight is needed)."""
        try:
            return self.state()
        finally:
            with self._flights_lock:
                self._flights.pop(loop, None)

    def _refresh(self, now: float) -> SwitchState:
        names = [n for n in (self.registry_parameter, self.shadow_parameter) if n]
        if not names:
            return SwitchState()
        self.stats.reads += 1
        try:
            response = self.ssm.get_parameters(Names=names, WithDecryption=True)
            values = {p["Name"]: p["Value"] for p in response.get("Parameters", [])}
            state = SwitchState(
                disabled=_disabled_tools(values.get(self.registry_parameter or "")),
                shadow=_is_shadow(values.get(self.shadow_parameter or "")),
            )
        except Exception as exc:  # any failure to read: see the module docstring
            self.stats.errors += 1
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            if self._good is not None and now - self._good_at <= self.max_stale:
                return self._good
            if self.fail_open:
                return SwitchState(ok=True, error=self.stats.last_error)
            return SwitchState(ok=False, error=self.stats.last_error)
        self._good, self._good_at = state, now
        return state


def _disabled_tools(raw: str | None) -> frozenset[str]:
    if raw is None:
        return frozenset()
    doc = json.loads(raw)  # ValueError -> handled by the caller as an unreadable switch
    tools = doc.get("tools", {}) if isinstance(doc, dict) else None
    if not isinstance(tools, dict):
        raise ValueError('tool registry is not {"tools": {...}}')
    return frozenset(
        name
        for name, entry in tools.items()
        if isinstance(entry, dict) and entry.get("enabled", True) is False
    )


def _is_shadow(raw: str | None) -> bool:
    if raw is None:
        return False
    return raw.strip() != "live"
