"""The retry policy as a pure function: no clock, no server, no randomness of its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from axis.core.retry import GiveUp, RetryPolicy, next_attempt, schedule

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
DEFAULT = RetryPolicy()


def test_the_default_schedule_doubles_from_two_seconds_up_to_half_an_hour() -> None:
    ceilings = [DEFAULT.ceiling(n) for n in range(1, 14)]
    assert ceilings[:11] == [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 1800]
    assert set(ceilings[10:]) == {1800}


def test_full_jitter_spans_zero_to_the_ceiling() -> None:
    assert next_attempt(3, T0, DEFAULT, since=T0, draw=lambda: 0.0) == T0
    almost = next_attempt(3, T0, DEFAULT, since=T0, draw=lambda: 0.999999)
    assert isinstance(almost, datetime)
    assert timedelta(seconds=7.99) < almost - T0 < timedelta(seconds=8)


def test_gives_up_after_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert isinstance(next_attempt(2, T0, policy, since=T0, draw=lambda: 0.5), datetime)
    gave_up = next_attempt(3, T0, policy, since=T0, draw=lambda: 0.5)
    assert isinstance(gave_up, GiveUp) and "max_attempts 3" in gave_up.reason


def test_gives_up_when_the_next_try_would_be_too_old() -> None:
    policy = RetryPolicy(max_age_s=60)
    late = T0 + timedelta(seconds=59)
    assert isinstance(next_attempt(1, late, policy, since=T0, draw=lambda: 0.0), datetime)
    gave_up = next_attempt(1, late, policy, since=T0, draw=lambda: 0.9)
    assert isinstance(gave_up, GiveUp) and "max_age" in gave_up.reason


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_s": 0},
        {"factor": 0.5},
        {"cap_s": 1, "base_s": 2},
        {"max_attempts": 0},
        {"max_age_s": 0},
    ],
)
def test_nonsense_policies_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


def test_huge_attempt_numbers_stay_at_the_cap() -> None:
    policy = RetryPolicy(max_attempts=10**9)
    assert policy.ceiling(10**6) == policy.cap_s
    assert RetryPolicy(factor=10.0, cap_s=1e308, max_attempts=10**9).ceiling(400) == 1e308


def test_the_documented_schedule() -> None:
    waits = schedule(DEFAULT)
    assert waits[:3] == [2, 4, 8]
    # About a day of retrying, at most half an hour apart once backed off.
    assert sum(w / 2 for w in waits) <= DEFAULT.max_age_s
    assert len(waits) > 40
    assert schedule(RetryPolicy(max_attempts=3)) == [2, 4]
    assert schedule(RetryPolicy(max_age_s=10)) == [2, 4, 8]  # 1 + 2 + 4 s expected, then > 10


@given(
    failures=st.integers(min_value=0, max_value=200),
    offset=st.floats(min_value=0, max_value=200_000),
    draw=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_next_attempt_is_never_in_the_past_nor_past_the_ceiling(
    failures: int, offset: float, draw: float
) -> None:
    now = T0 + timedelta(seconds=offset)
    result = next_attempt(failures, now, DEFAULT, since=T0, draw=lambda: draw)
    if isinstance(result, GiveUp):
        assert failures >= DEFAULT.max_attempts or offset + draw * 1800 > DEFAULT.max_age_s - 1
        return
    assert now <= result <= now + timedelta(seconds=DEFAULT.ceiling(failures))
    assert result - T0 <= timedelta(seconds=DEFAULT.max_age_s)
