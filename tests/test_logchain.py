"""The log chain's hash, pinned to its written definition (SPEC: SHA-256 of the entry's
canonical JSON, sorted keys, no spaces, UTF-8): entries already stored hash as they always
did, whatever makes the hashing faster."""

from __future__ import annotations

import hashlib
import json

from hypothesis import given
from hypothesis import strategies as st

from axis.core.logchain import Draft, LogEntry, entry_hash, link, linked, verify_chain

texts = st.text(max_size=40)  # Vietnamese, quotes, controls, surrogates aside: any text
maybe = st.none() | texts
G22 = "000.00.00.G22"


def canonical_sha256(fields: dict[str, object]) -> str:
    """The definition, written out with json.dumps itself."""
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@given(
    seq=st.integers(1, 2**62),
    at=texts,
    event=texts,
    organ_id=maybe,
    package_id=maybe,
    detail=maybe,
    sha256=maybe,
    prev=texts,
    cert=maybe,
)
def test_a_link_hashes_its_canonical_json(
    seq: int,
    at: str,
    event: str,
    organ_id: str | None,
    package_id: str | None,
    detail: str | None,
    sha256: str | None,
    prev: str,
    cert: str | None,
) -> None:
    entry = link(prev, seq, at, event, organ_id, package_id, detail, sha256, cert)
    expected: dict[str, object] = {
        "seq": seq, "at": at, "event": event, "organ_id": organ_id,
        "package_id": package_id, "detail": detail, "sha256": sha256, "prev": prev,
    }  # fmt: skip
    if cert is not None:  # entries from before schema version 3 never had the key
        expected["cert_sha256"] = cert
    assert entry.fields() == expected
    assert entry.hash == canonical_sha256(expected) == entry_hash(entry.fields())
    assert (entry.seq, entry.prev, entry.cert_sha256) == (seq, prev, cert)


def test_a_known_entry_keeps_its_hash() -> None:
    """One entry with Vietnamese text, hashed by hand once: a change to the encoding (an
    escaped non-ASCII letter, a space after a comma) breaks every stored chain."""
    entry = link("0" * 64, 7, "2020-02-10T08:00:00.000+07:00", "received", "000.00.00.G22",
                 "p1", "Công văn số 12", "ab" * 32)  # fmt: skip
    text = (
        '{"at":"2020-02-10T08:00:00.000+07:00","detail":"Công văn số 12",'
        '"event":"received","organ_id":"000.00.00.G22","package_id":"p1",'
        f'"prev":"{"0" * 64}","seq":7,"sha256":"{"ab" * 32}"}}'
    )
    assert entry.hash == hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_linked_entries_form_a_chain_that_verifies() -> None:
    drafts = [Draft(f"2020-01-0{i}T00:00:00+07:00", "delivered", G22) for i in range(1, 6)]
    entries = linked(drafts, (41, "f" * 64))
    assert [e.seq for e in entries] == [42, 43, 44, 45, 46]
    assert entries[0].prev == "f" * 64
    assert all(b.prev == a.hash for a, b in zip(entries, entries[1:], strict=False))
    assert verify_chain(entries, "f" * 64, 42) is None
    edited = LogEntry(**{**vars(entries[2]), "detail": "edited"})
    broken = verify_chain([*entries[:2], edited, *entries[3:]], "f" * 64, 42)
    assert broken is not None and broken.seq == 44
