"""Time as a dependency: the engine waits through a clock, so tests never really sleep."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

T = TypeVar("T")


class Clock(Protocol):
    def now(self) -> datetime: ...
    def monotonic(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class FakeClock:
    """A clock that only moves when slept on or advanced: for tests and drills."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
        self._mono = 0.0
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._mono += seconds
            self._now += timedelta(seconds=seconds)


class PollTimeout(Exception):
    """``poll_until`` gave up; ``last`` is the last value read."""

    def __init__(self, last: object) -> None:
        super().__init__("timed out")
        self.last = last


def poll_until(
    clock: Clock,
    read: Callable[[], T],
    done: Callable[[T], bool],
    *,
    timeout: float,
    interval: float = 1.0,
    on_poll: Callable[[T], None] | None = None,
) -> T:
    """Call ``read`` until ``done(value)`` or ``timeout`` seconds pass; return the last value.

    Raises :class:`PollTimeout` carrying the last value when time runs out.
    """
    deadline = clock.monotonic() + timeout
    while True:
        value = read()
        if on_poll is not None:
            on_poll(value)
        if done(value):
            return value
        if clock.monotonic() >= deadline:
            raise PollTimeout(value)
        clock.sleep(min(interval, max(0.0, deadline - clock.monotonic())) or interval)
