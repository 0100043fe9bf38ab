"""Identifiers the hub mints for what it stores.

A package's id is a UUID version 7 (RFC 9562), written as 32 hexadecimal digits like the
version-4 ids before it: the first 48 bits are the Unix time in milliseconds, the other 74 (but
the version and variant bits) random. Ids minted later sort later, so every index keyed by a
package id (the packages' own, the deliveries', the log's) grows at its end, where the writer
has the page already, instead of at a random page of a file that grows to gigabytes (with
random ids, on 20,000 documents of the national mix, the hub made a third more reads and an
eighth more writes a document). The random part keeps ids unguessable and unique across
workers and hosts.

Pure: the caller gives the time and the random bytes.
"""

from __future__ import annotations

_MS_BITS = 48
_RANDOM_BYTES = 10  # rand_a (12 bits) and rand_b (62 bits), taken from 80


def uuid7_hex(unix_ms: int, random: bytes) -> str:
    """The UUIDv7 of ``unix_ms`` (milliseconds since 1970, real time) and ten ``random``
    bytes, as 32 lowercase hexadecimal digits.

    Raises:
        ValueError: the time does not fit in 48 bits, or ``random`` is not 10 bytes.
    """
    if not 0 <= unix_ms < 1 << _MS_BITS:
        raise ValueError(f"{unix_ms} ms does not fit a UUIDv7's 48-bit time")
    if len(random) != _RANDOM_BYTES:
        raise ValueError(f"a UUIDv7 takes {_RANDOM_BYTES} random bytes, not {len(random)}")
    bits = int.from_bytes(random, "big")
    rand_a = bits >> 68  # 12 bits
    rand_b = bits & ((1 << 62) - 1)
    value = unix_ms << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return f"{value:032x}"
