"""The hub's clock for a time-warped replay (``axis simulate`` starting its own hub).

A hub normally stamps what it records with the time it is. A replay of the launch window
sends two months of documents in minutes; for the hub's statistics, ``axis stats`` and the
dashboard to show the window's 63 days (the Tết dip included) rather than one afternoon, the
hub that the simulator starts runs on the simulation's clock: each request says what time it
is in the simulation (``Axis-Simulated-Time``), and what that request records is stamped so.
Work no request carries (pushes, retries) takes the latest time any request said.

Only records move in time: certificates are still checked against the real time, and rate
limits, timeouts and checkpoints run on it. The mode is refused on a hub that could serve
real agencies (:func:`axis.host.datadir.check_simulated_clock`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime

HEADER = "Axis-Simulated-Time"


def utc_now() -> datetime:
    """The real time, in UTC: what a hub stamps its records with outside a replay, and what
    certificates are always checked against."""
    return datetime.now(UTC)


def parse_instant(raw: str) -> datetime:
    """An ISO 8601 instant with its offset (``2019-12-09T08:15:00+07:00``), in UTC.

    Raises:
        ValueError: not such an instant."""
    if len(raw) > 64:
        raise ValueError("too long for an instant")
    instant = datetime.fromisoformat(raw)
    if instant.tzinfo is None:
        raise ValueError("an instant needs its UTC offset")
    return instant.astimezone(UTC)


class SimulatedClock:
    """Now, as the simulation says: the time the current request carries, else the latest
    any request carried (never going back), else the real time (before the first)."""

    def __init__(self, start: datetime | None = None) -> None:
        """``start``: now until a request says otherwise (default: the real time)."""
        self._latest: datetime | None = start
        self._current: ContextVar[datetime | None] = ContextVar("simulated_now", default=None)

    def __call__(self) -> datetime:
        current = self._current.get()
        if current is not None:
            return current
        return self._latest if self._latest is not None else utc_now()

    @contextlib.contextmanager
    def at(self, instant: datetime) -> Iterator[None]:
        """What runs in this block (this task and what it awaits) happens at ``instant``."""
        if self._latest is None or instant > self._latest:
            self._latest = instant
        token = self._current.set(instant)
        try:
            yield
        finally:
            self._current.reset(token)
