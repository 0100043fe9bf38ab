"""When to try a push again: exponential backoff with full jitter, bounded in count and age.

Theory of operation: attempt ``n`` (1 for the first retry after the first failure) waits a
random time between 0 and ``min(cap, base * factor ** (n - 1))`` — "full jitter", which spreads
the retries of many deliveries that failed together (an agency whose endpoint came back) instead
of sending them all again in the same second. A delivery gives up when it has failed
``max_attempts`` times, or when the next try would fall after ``max_age`` from the moment the hub
accepted the package. Giving up only ends the pushing: the package stays in the recipient's
inbox for pull, marked ``failed``.

The function is pure: the random draw comes in as an argument, so tests fix it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often pushes are retried (``[delivery]`` in axis.toml)."""

    base_s: float = 2.0
    factor: float = 2.0
    cap_s: float = 1800.0
    max_attempts: int = 100
    max_age_s: float = 86400.0

    def __post_init__(self) -> None:
        if self.base_s <= 0 or self.factor < 1 or self.cap_s < self.base_s:
            raise ValueError("retry policy needs base > 0, factor >= 1 and cap >= base")
        if self.max_attempts < 1 or self.max_age_s <= 0:
            raise ValueError("retry policy needs max_attempts >= 1 and max_age > 0")

    def ceiling(self, attempt: int) -> float:
        """The longest wait before retry ``attempt`` (1-based), in seconds."""
        # Computed in log space would be exact; a float power overflows only past ~1000
        # attempts, which max_attempts keeps us far from, but clamp the exponent anyway.
        exponent = min(attempt - 1, 1000)
        try:
            return float(min(self.cap_s, self.base_s * self.factor**exponent))
        except OverflowError:
            return self.cap_s


@dataclass(frozen=True)
class GiveUp:
    """No more pushes: why."""

    reason: str


def next_attempt(
    failures: int,
    now: datetime,
    policy: RetryPolicy,
    *,
    since: datetime,
    draw: Callable[[], float] = random.random,
) -> datetime | GiveUp:
    """When to push again after the ``failures``-th failed push, or :class:`GiveUp`.

    ``since`` is when the hub accepted the package; ``draw`` returns a float in [0, 1).
    """
    if failures >= policy.max_attempts:
        return GiveUp(f"{failures} pushes failed (max_attempts {policy.max_attempts})")
    wait = draw() * policy.ceiling(failures)
    when = now + timedelta(seconds=wait)
    if when - since > timedelta(seconds=policy.max_age_s):
        return GiveUp(f"no success within max_age {policy.max_age_s:g} s")
    return when


def schedule(policy: RetryPolicy) -> list[float]:
    """The ceilings of the waits, retry by retry, until the policy gives up on count or age
    (the mean wait is half of each); for documentation and the resolving note."""
    ceilings: list[float] = []
    elapsed = 0.0
    for attempt in range(1, policy.max_attempts):
        ceiling = policy.ceiling(attempt)
        if elapsed + ceiling / 2 > policy.max_age_s:
            break
        ceilings.append(ceiling)
        elapsed += ceiling / 2
    return ceilings
