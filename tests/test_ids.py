"""The hub's package ids: UUIDv7, time-ordered, random in the rest."""

from __future__ import annotations

import os
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from axis.core.ids import uuid7_hex

MS = st.integers(min_value=0, max_value=(1 << 48) - 1)
RANDOM = st.binary(min_size=10, max_size=10)


@given(MS, RANDOM)
def test_an_id_is_a_uuid7_holding_its_time(ms: int, random: bytes) -> None:
    text = uuid7_hex(ms, random)
    parsed = uuid.UUID(hex=text)
    assert len(text) == 32 and text == parsed.hex  # lowercase, the shape of the ids before
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert parsed.int >> 80 == ms


@given(MS, MS, RANDOM, RANDOM)
def test_a_later_millisecond_sorts_later_whatever_the_random_bits(
    a: int, b: int, ra: bytes, rb: bytes
) -> None:
    if a < b:
        assert uuid7_hex(a, ra) < uuid7_hex(b, rb)


@given(MS, RANDOM, RANDOM)
def test_the_random_bits_are_kept_but_version_and_variant(ms: int, ra: bytes, rb: bytes) -> None:
    # 74 random bits: two draws differ in the id wherever they differ outside those 6 bits.
    mask = ~(0xF << 76 | 0b11 << 62) & ((1 << 80) - 1)
    if (int.from_bytes(ra, "big") >> 68 << 64 | int.from_bytes(ra, "big") & ((1 << 62) - 1)) != (
        int.from_bytes(rb, "big") >> 68 << 64 | int.from_bytes(rb, "big") & ((1 << 62) - 1)
    ):
        assert int(uuid7_hex(ms, ra), 16) & mask != int(uuid7_hex(ms, rb), 16) & mask


def test_ids_minted_together_are_distinct() -> None:
    assert len({uuid7_hex(1_700_000_000_000, os.urandom(10)) for _ in range(10_000)}) == 10_000


@pytest.mark.parametrize(("ms", "random"), [(-1, bytes(10)), (1 << 48, bytes(10)), (0, bytes(9))])
def test_what_does_not_fit_is_refused(ms: int, random: bytes) -> None:
    with pytest.raises(ValueError):
        uuid7_hex(ms, random)
