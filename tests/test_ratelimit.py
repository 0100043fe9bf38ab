"""The per-agency token buckets (pure: the test gives the time)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from axis.core.ratelimit import RateLimit, RateLimiter


def test_a_burst_then_the_rate() -> None:
    limiter = RateLimiter(RateLimit(rate_per_s=10, burst=3))
    assert [limiter.take("G22", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("G22", 0.0) == pytest.approx(0.1)  # the next token in 1/10 s
    assert limiter.take("G22", 0.05) == pytest.approx(0.05)
    assert limiter.take("G22", 0.1) == 0.0
    assert limiter.take("G22", 0.1) > 0


def test_agencies_have_their_own_buckets() -> None:
    limiter = RateLimiter(RateLimit(rate_per_s=1, burst=1))
    assert limiter.take("G22", 0.0) == 0.0
    assert limiter.take("G22", 0.0) > 0
    assert limiter.take("H41", 0.0) == 0.0, "one noisy agency does not use up another's"


def test_a_full_bucket_does_not_overflow() -> None:
    limiter = RateLimiter(RateLimit(rate_per_s=100, burst=2))
    limiter.take("G22", 0.0)
    assert [limiter.take("G22", 3600.0) for _ in range(3)][-1] > 0, "at most burst at once"


def test_off_when_the_rate_is_zero() -> None:
    limiter = RateLimiter(RateLimit(rate_per_s=0, burst=0))
    assert all(limiter.take("G22", 0.0) == 0.0 for _ in range(10_000))


def test_a_burst_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        RateLimiter(RateLimit(rate_per_s=5, burst=0.5))


@given(
    st.floats(0.1, 1000),
    st.integers(1, 50),
    st.lists(st.floats(0, 0.5), min_size=1, max_size=200),
)
def test_never_more_than_burst_plus_rate_times_elapsed(
    rate: float, burst: int, gaps: list[float]
) -> None:
    limiter = RateLimiter(RateLimit(rate_per_s=rate, burst=burst))
    now, allowed = 0.0, 0
    for gap in gaps:
        now += gap
        wait = limiter.take("G22", now)
        assert wait >= 0
        allowed += wait == 0.0
    assert allowed <= burst + rate * now + 1e-6
