"""Per-agency rate limiting: a token bucket for each agency, pure (the caller gives the time).

Each agency may make ``rate_per_s`` requests a second on average and ``burst`` at once: its
bucket holds up to ``burst`` tokens, refills at ``rate_per_s``, and every request takes one.
An empty bucket means "come back in N seconds", which the web layer turns into 429 with
Retry-After. Buckets are keyed by authenticated OrganIds only, so their number is bounded by
the registered agencies; nobody unauthenticated can make the table grow.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RateLimit:
    """The limit every agency gets; ``rate_per_s <= 0`` turns limiting off."""

    rate_per_s: float
    burst: float

    @property
    def enabled(self) -> bool:
        return self.rate_per_s > 0


class RateLimiter:
    """Token buckets by key (an OrganId)."""

    def __init__(self, limit: RateLimit) -> None:
        if limit.enabled and limit.burst < 1:
            raise ValueError("a burst below 1 would refuse every request")
        self.limit = limit
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str, now: float) -> float:
        """Take one token for ``key`` at time ``now`` (seconds, monotonic).

        Returns 0.0 if the request may go ahead, otherwise the seconds until a token is due
        (and takes nothing).
        """
        if not self.limit.enabled:
            return 0.0
        tokens, at = self._buckets.get(key, (self.limit.burst, now))
        tokens = min(self.limit.burst, tokens + max(0.0, now - at) * self.limit.rate_per_s)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.limit.rate_per_s
