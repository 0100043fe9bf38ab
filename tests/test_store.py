"""The Store protocol, run against both stores: a real SQLite file and the real PostgreSQL
(a fresh schema per test; skipped with its reason where there is no PostgreSQL, and a failure
in CI, which sets AXIS_REQUIRE_POSTGRES=1).

Every test goes through :class:`axis.store.base.Store` only, via the ``store`` fixture.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from axis.core.formats import BusinessDocType, PackageKind
from axis.core.lifecycle import (
    PENDING,
    DeliveryEvent,
    DeliveryState,
    InvalidTransition,
    next_state,
)
from axis.core.logchain import verify_chain
from axis.errors import DuplicateConflict, Unavailable
from axis.store import open_store
from axis.store.base import (
    Agency,
    Delivery,
    ItemFilter,
    ItemQuery,
    NewPackage,
    PackageRecord,
    StatusUpdate,
    Store,
    System,
)
from axis.store.sqlite import SqliteStore
from tests.helpers import eventually, postgres_schema

G22, H41, H10, T01 = "000.00.00.G22", "000.00.00.H41", "000.00.00.H10", "000.00.00.T01"
T0 = datetime(2024, 5, 17, 8, 30, 15, 123456, tzinfo=UTC)

S, E = DeliveryState, DeliveryEvent


@dataclass
class Backend:
    """How to open (and reopen) the store under test."""

    name: str
    url: str
    path: Path | None  # the SQLite file, for the checks behind the store's back

    def open(self) -> Store:
        return open_store(self.url)


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        path = tmp_path / "axis.db"
        yield Backend("sqlite", str(path), path)
        return
    async with postgres_schema() as url:
        yield Backend("postgres", url, None)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    opened = backend.open()
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def sqlite_only(backend: Backend) -> Path:
    if backend.path is None:
        pytest.skip("a check of the SQLite file itself")
    return backend.path


def agency(organ_id: str, n: int = 0, *, active: bool = True) -> Agency:
    return Agency(
        organ_id=organ_id,
        name=f"Cơ quan {organ_id}",
        cert_pem=f"-----BEGIN CERTIFICATE-----\n{organ_id}\n".encode(),
        fingerprint=f"{n:02d}" + organ_id.replace(".", "").lower().rjust(62, "0"),
        registered_at=T0,
        active=active,
        endpoint=None if n % 2 == 0 else f"https://127.0.0.1:90{n:02d}/push",
    )


def package(
    n: int,
    *,
    sender: str = G22,
    recipients: tuple[str, ...] = (H41, H10),
    key: str | None = None,
    sha: str | None = None,
    kind: PackageKind = PackageKind.EDOC,
    business_type: BusinessDocType = BusinessDocType.NEW,
    document_id: str | None = None,
    body: bytes | None = None,
    status_update: StatusUpdate | None = None,
    at: datetime | None = None,
    notes: str | None = None,
) -> NewPackage:
    document_id = document_id or f"{n}/CV-VPCP"
    return NewPackage(
        id=f"pkg-{n:04d}",
        kind=kind,
        sender=sender,
        document_id=document_id,
        idempotency_key=key or f"{document_id}|{business_type}",
        business_type=business_type,
        sha256=sha or f"{n:064x}",
        subject=f"Công văn số {n}",
        received_at=at or T0 + timedelta(seconds=n),
        body=body if body is not None else f"<edXML n='{n}'/>".encode(),
        recipients=recipients,
        answer=f'{{"id": "pkg-{n:04d}", "n": {n}}}',
        status_update=status_update,
        notes=notes,
    )


def status_of(
    n: int, edoc: NewPackage, sender: str, code: str, at: datetime | None = None
) -> NewPackage:
    """Package ``n``: ``sender``'s status ``code`` on its delivery of ``edoc``."""
    return package(
        n,
        kind=PackageKind.STATUS,
        sender=sender,
        recipients=(edoc.sender,),
        document_id=edoc.document_id,
        key=f"status|{n}",
        status_update=StatusUpdate(edoc.id, sender, code),
        at=at,
    )


def record_of(p: NewPackage, seq: int) -> PackageRecord:
    return PackageRecord(
        p.id,
        seq,
        p.kind,
        p.sender,
        p.document_id,
        p.business_type,
        p.sha256,
        p.subject,
        p.received_at,
        p.answer,
    )


async def states(store: Store, package_id: str) -> dict[str, DeliveryState]:
    return {d.recipient: d.state for d in await store.deliveries(package_id)}


# -- agencies -------------------------------------------------------------------------------


async def test_add_get_and_list_agencies(store: Store) -> None:
    assert await store.list_agencies() == []
    assert await store.get_agency(G22) is None
    added = [agency(H41, 1), agency(G22, 2, active=False), agency(H10, 3)]
    for a in added:
        await store.add_agency(a)
    assert await store.get_agency(H41) == added[0]
    assert await store.get_agency(G22) == added[1]  # inactive agencies are still found
    listed = await store.list_agencies()
    assert [a.organ_id for a in listed] == [G22, H10, H41]  # by OrganId
    assert listed == sorted(added, key=lambda a: a.organ_id)
    got = await store.get_agency(H10)
    assert got is not None
    assert got.registered_at == T0 and got.registered_at.tzinfo is not None
    assert isinstance(got.cert_pem, bytes)
    assert got.endpoint == "https://127.0.0.1:9003/push"


async def test_a_taken_organ_id_is_a_duplicate_conflict(store: Store) -> None:
    await store.add_agency(agency(H41, 1))
    with pytest.raises(DuplicateConflict):
        await store.add_agency(replace(agency(H41, 2), name="Someone else"))
    assert await store.list_agencies() == [agency(H41, 1)]


async def test_a_taken_certificate_is_a_duplicate_conflict(store: Store) -> None:
    await store.add_agency(agency(H41, 1))
    with pytest.raises(DuplicateConflict):
        await store.add_agency(replace(agency(H10, 2), fingerprint=agency(H41, 1).fingerprint))
    assert await store.get_agency(H10) is None
    assert await store.list_agencies() == [agency(H41, 1)]


async def test_set_agency_active(store: Store) -> None:
    await store.add_agency(agency(H41, 1))
    assert await store.set_agency_active(H41, False) is True
    got = await store.get_agency(H41)
    assert got is not None and got.active is False
    assert await store.set_agency_active(H41, False) is True  # already revoked: still found
    assert await store.set_agency_active(H41, True) is True
    got = await store.get_agency(H41)
    assert got is not None and got.active is True
    assert await store.set_agency_active(T01, False) is False
    assert await store.get_agency(T01) is None


async def test_agency_by_fingerprint(store: Store) -> None:
    a, b = agency(H41, 1), agency(H10, 2)
    await store.add_agency(a)
    await store.add_agency(b)
    assert await store.agency_by_fingerprint(a.fingerprint) == a
    assert await store.agency_by_fingerprint(b.fingerprint) == b
    assert await store.agency_by_fingerprint("ff" * 32) is None


# -- codes ----------------------------------------------------------------------------------


async def test_an_agency_holds_its_organ_id_and_its_aliases(store: Store) -> None:
    await store.add_agency(agency(G22, 1), aliases=["G22", "G22.01"])
    await store.add_agency(agency(H41, 2))
    held = await store.agency_codes(G22)
    assert [(c.code, c.organ_id, c.closed) for c in held] == [
        (G22, G22, False), ("G22", G22, False), ("G22.01", G22, False),
    ]  # fmt: skip
    assert held[1].added_at == T0
    assert [c.code for c in await store.agency_codes()] == [G22, H41, "G22", "G22.01"]
    found = await store.find_code("G22.01")
    assert found is not None and found.organ_id == G22
    assert await store.find_code("H41") is None
    entries = [e for e in await store.agency_entries() if e.event == "agency-code-added"]
    assert [(e.organ_id, e.detail) for e in entries] == [(G22, "G22"), (G22, "G22.01")]


async def test_a_code_is_held_by_one_agency_only(store: Store) -> None:
    await store.add_agency(agency(G22, 1), aliases=["G22"])
    with pytest.raises(DuplicateConflict, match="code G22 is held by 000.00.00.G22"):
        await store.add_agency(agency(H41, 2), aliases=["G22"])
    with pytest.raises(DuplicateConflict, match="code 000.00.00.G22 is held by"):
        await store.add_agency(agency(H41, 2), aliases=[G22])
    with pytest.raises(DuplicateConflict, match="agency 000.00.00.G22 is already registered"):
        await store.add_agency(agency(G22, 3))
    assert await store.get_agency(H41) is None  # nothing half-stored
    assert [c.code for c in await store.agency_codes()] == [G22, "G22"]
    await store.add_agency(agency(H41, 2))
    with pytest.raises(DuplicateConflict, match="held by 000.00.00.G22"):
        await store.add_code(H41, "G22")
    assert await store.add_code(H41, "H41") is True
    assert await store.add_code(H41, "H41") is True  # again: nothing changes
    assert await store.add_code(T01, "T01") is False  # no such agency
    assert [c.code for c in await store.agency_codes(H41)] == [H41, "H41"]


async def test_closing_a_code(store: Store) -> None:
    await store.add_agency(agency(H41, 1), aliases=["H28"])
    closed = await store.close_code("H28", "H29")
    assert (closed.code, closed.organ_id, closed.successor) == ("H28", H41, "H29")
    assert closed.closed and closed.closed_at is not None
    assert await store.find_code("H28") == closed
    assert await store.close_code("H28", "H29") == closed  # again, alike: nothing changes
    with pytest.raises(DuplicateConflict, match="closed already: H29 succeeds it"):
        await store.close_code("H28", "H30")
    # A code no agency here held can be closed too; nobody gets a closed code afterwards.
    unheld = await store.close_code("H33", "H29")
    assert unheld.organ_id is None and unheld.successor == "H29"
    with pytest.raises(DuplicateConflict, match="code H33 is closed"):
        await store.add_agency(agency(G22, 2), aliases=["H33"])
    with pytest.raises(DuplicateConflict, match="code H28 is closed"):
        await store.add_code(H41, "H28")
    held = await store.code_holder("H28")
    assert held is not None and held[0] == closed and held[1] == agency(H41, 1)
    assert await store.code_holder("H33") == (unheld, None)
    assert await store.code_holder("H34") is None
    entries = [e for e in await store.agency_entries() if e.event == "agency-code-closed"]
    assert [(e.organ_id, e.detail) for e in entries] == [
        (H41, "H28 succeeded by H29"), (None, "H33 succeeded by H29"),
    ]  # fmt: skip


# -- packages -------------------------------------------------------------------------------


async def test_insert_commits_the_package_and_queued_deliveries(store: Store) -> None:
    p = package(1, recipients=(H41, H10, T01))
    record, created = await store.insert_package(p)
    assert created is True
    assert record == record_of(p, record.seq)
    assert record.seq >= 1
    deliveries = await store.deliveries(p.id)
    assert [d.recipient for d in deliveries] == sorted([H41, H10, T01])  # by recipient
    for d in deliveries:
        assert d.package_id == p.id
        assert d.state is S.QUEUED
        assert d.status_code is None
        assert d.updated_at == p.received_at
    assert await store.get_package(p.id) == (record, p.body)


async def test_sequence_numbers_grow(store: Store) -> None:
    seqs = [(await store.insert_package(package(n)))[0].seq for n in range(1, 6)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5


async def test_the_same_key_and_bytes_return_the_first_record(store: Store) -> None:
    first = package(1)
    record, created = await store.insert_package(first)
    assert created
    # A resend: same key and hash, but everything the hub would compute afresh differs.
    again = replace(
        first,
        id="pkg-resend",
        received_at=T0 + timedelta(hours=1),
        answer='{"id": "pkg-resend"}',
        recipients=(T01,),
    )
    record2, created2 = await store.insert_package(again)
    assert created2 is False
    assert record2 == record
    assert record2.answer == first.answer
    assert await store.get_package("pkg-resend") is None
    assert await store.deliveries("pkg-resend") == []
    assert await store.inbox(T01, 0, 100) == []
    assert set(await states(store, first.id)) == {H41, H10}


async def test_the_same_key_with_other_bytes_is_a_conflict_and_writes_nothing(
    store: Store,
) -> None:
    first = package(1)
    await store.insert_package(first)
    await store.insert_package(package(2))
    other = replace(
        package(3, key=first.idempotency_key, recipients=(T01,)),
        status_update=StatusUpdate(first.id, H41, "02"),
    )
    with pytest.raises(DuplicateConflict):
        await store.insert_package(other)
    assert await store.get_package(other.id) is None
    assert await store.deliveries(other.id) == []
    assert await store.inbox(T01, 0, 100) == []
    assert {d.status_code for d in await store.deliveries(first.id)} == {None}
    found = await store.find_by_key(first.sender, first.idempotency_key)
    assert found is not None and found.id == first.id
    # The store still takes writes after the refusal.
    record, created = await store.insert_package(package(4))
    assert created and record.id == "pkg-0004"


async def test_keys_are_per_sender(store: Store) -> None:
    a = package(1, sender=G22, recipients=(H41,))
    b = package(2, sender=H10, recipients=(H41,), key=a.idempotency_key)
    assert (await store.insert_package(a))[1] is True
    assert (await store.insert_package(b))[1] is True


async def test_a_status_update_is_recorded_on_the_referenced_delivery(store: Store) -> None:
    edoc = package(1, recipients=(H41, H10))
    await store.insert_package(edoc)
    status = package(
        2,
        kind=PackageKind.STATUS,
        sender=H41,
        recipients=(G22,),
        document_id=edoc.document_id,
        key=f"status|{edoc.document_id}|03",
        status_update=StatusUpdate(edoc.id, H41, "03"),
        at=T0 + timedelta(minutes=5),
    )
    record, created = await store.insert_package(status)
    assert created and record.kind == "status"
    by_recipient = {d.recipient: d for d in await store.deliveries(edoc.id)}
    assert by_recipient[H41].status_code == "03"
    assert by_recipient[H41].updated_at == status.received_at
    assert by_recipient[H41].state is S.QUEUED  # a business code does not move the state
    assert by_recipient[H10].status_code is None
    assert by_recipient[H10].updated_at == edoc.received_at
    # The status package itself is delivered to the original sender.
    assert [p.id for p in await store.inbox(G22, 0, 10)] == [status.id]
    # A later status overwrites the code: status_code is the last one sent.
    later = replace(
        status,
        id="pkg-later",
        idempotency_key="status-later",
        sha256="ab" * 32,
        status_update=StatusUpdate(edoc.id, H41, "05"),
    )
    await store.insert_package(later)
    assert {d.recipient: d.status_code for d in await store.deliveries(edoc.id)} == {
        H41: "05",
        H10: None,
    }


async def test_a_status_that_acknowledges_sets_its_code_even_on_an_acknowledged_delivery(
    store: Store,
) -> None:
    """01 is a code and an acknowledgement: it moves the delivery and sets its code in one
    update; where the delivery is acknowledged already (by the ack route), the code and its
    time are set all the same, and nothing is moved or logged twice."""
    edoc = package(1, recipients=(H41, H10))
    await store.insert_package(edoc)
    await store.apply_event(edoc.id, H41, E.ACKED, T0 + timedelta(minutes=1))
    late = status_of(2, edoc, H41, "01", T0 + timedelta(minutes=5))
    fresh = status_of(3, edoc, H10, "01", T0 + timedelta(minutes=6))
    await store.insert_package(late)
    await store.insert_package(fresh)
    by_recipient = {d.recipient: d for d in await store.deliveries(edoc.id)}
    for recipient, sent in ((H41, late), (H10, fresh)):
        delivery = by_recipient[recipient]
        assert (delivery.state, delivery.status_code) == (S.ACKNOWLEDGED, "01")
        assert delivery.updated_at == sent.received_at
    trail = [(e.event, e.organ_id) for e in await store.trace(edoc.id)]
    assert trail.count(("acknowledged", H41)) == 1 and trail.count(("acknowledged", H10)) == 1


async def test_stored_edocs_is_what_routing_reads_of_a_document(store: Store) -> None:
    doc = "21/CV-VPCP"
    original = package(1, document_id=doc, recipients=(H41, H10, T01))
    await store.insert_package(original)
    answer = package(
        2,
        kind=PackageKind.STATUS,
        sender=H41,
        recipients=(G22,),
        document_id=doc,
        key="status-2",
        status_update=StatusUpdate(original.id, H41, "03"),
    )
    await store.insert_package(answer)
    await store.apply_event(original.id, H10, E.FETCHED, T0 + timedelta(minutes=1))
    # A recall takes it back from whoever has not fetched it (H41 and T01, not H10).
    recall = package(3, document_id=doc, business_type=BusinessDocType.RECALL, recipients=(H41,))
    await store.insert_package(replace(recall, recall_of=(original.id,)))
    await store.insert_package(package(4, document_id="22/CV-VPCP"))  # another document
    await store.insert_package(package(5, sender=H41, document_id=doc))  # another sender's

    stored = await store.stored_edocs(G22, doc)

    assert [(s.package_id, s.business_type) for s in stored] == [
        (recall.id, BusinessDocType.RECALL),  # newest first
        (original.id, BusinessDocType.NEW),
    ]
    assert dict(stored[1].deliveries) == {H10: None, H41: "03", T01: None}
    assert list(stored[1].deliveries) == sorted([H10, H41, T01])
    assert stored[1].taken_back == {H41, T01}
    assert dict(stored[0].deliveries) == {H41: None} and not stored[0].taken_back
    assert await store.stored_edocs(G22, "99/CV-VPCP") == ()
    assert await store.stored_edocs(H10, doc) == ()
    # Of some recipients only (what a status reads): every edoc still listed, even one none
    # of them received, with their deliveries alone.
    some = await store.stored_edocs(G22, doc, [T01, H10])
    assert [s.package_id for s in some] == [recall.id, original.id]
    assert dict(some[1].deliveries) == {H10: None, T01: None} and some[1].taken_back == {T01}
    assert dict(some[0].deliveries) == {} and not some[0].taken_back
    nobody = await store.stored_edocs(G22, doc, ())
    assert [(s.package_id, dict(s.deliveries)) for s in nobody] == [
        (recall.id, {}),
        (original.id, {}),
    ]


async def test_find_by_key(store: Store) -> None:
    p = package(1, body=b"\x00\xff<edXML/>\xfe")
    record, _ = await store.insert_package(p)
    assert await store.find_by_key(p.sender, p.idempotency_key) == record
    assert await store.get_record(record.id) == record
    assert await store.get_record("pkg-none") is None
    assert await store.find_by_key(H41, p.idempotency_key) is None
    assert await store.find_by_key(p.sender, "no such key") is None


async def test_find_document_sees_only_original_edocs(store: Store) -> None:
    original = package(1, document_id="12/CV-VPCP")
    await store.insert_package(original)
    followups = (BusinessDocType.RECALL, BusinessDocType.UPDATE, BusinessDocType.REPLACE)
    for n, btype in enumerate(followups, start=2):
        await store.insert_package(package(n, document_id="12/CV-VPCP", business_type=btype))
    status = package(
        5, kind=PackageKind.STATUS, sender=H41, recipients=(G22,), document_id="77/CV-H41", key="st"
    )
    await store.insert_package(status)
    found = await store.find_document(G22, "12/CV-VPCP")
    assert found is not None
    assert found.id == original.id and found.business_type == 0
    assert await store.find_document(H41, "12/CV-VPCP") is None  # another sender
    assert await store.find_document(H41, "77/CV-H41") is None  # a status, not an edoc
    assert await store.find_document(G22, "99/CV-VPCP") is None


async def test_find_document_ignores_a_later_version_alone(store: Store) -> None:
    await store.insert_package(
        package(1, document_id="13/CV-VPCP", business_type=BusinessDocType.UPDATE)
    )
    assert await store.find_document(G22, "13/CV-VPCP") is None


@pytest.mark.parametrize(
    "body",
    [
        b"",
        "<edXML>Công văn về việc triển khai</edXML>".encode(),
        "<?xml version='1.0' encoding='windows-1258'?><a>Vi\xeat</a>".encode("latin-1"),
        b"\xef\xbb\xbf<edXML/>\r\n",
        bytes(range(256)) * 4,
    ],
    ids=["empty", "utf8", "legacy-encoding", "bom-crlf", "every-byte"],
)
async def test_get_package_returns_the_exact_bytes(store: Store, body: bytes) -> None:
    p = package(1, body=body)
    record, _ = await store.insert_package(p)
    got = await store.get_package(p.id)
    assert got is not None
    assert got[0] == record
    assert got[1] == body and type(got[1]) is bytes


async def test_get_package_of_an_unknown_id(store: Store) -> None:
    assert await store.get_package("pkg-none") is None
    assert await store.deliveries("pkg-none") == []


# -- inbox ----------------------------------------------------------------------------------


async def test_inbox_is_oldest_first_and_pages_with_after_and_limit(store: Store) -> None:
    inserted = []
    for n in range(1, 8):
        recipients = (H41, H10) if n % 3 else (H10,)  # n = 3, 6 are not for H41
        inserted.append((await store.insert_package(package(n, recipients=recipients)))[0])
    mine = [r for r in inserted if r.id not in ("pkg-0003", "pkg-0006")]
    assert await store.inbox(H41, 0, 100) == mine
    pages: list[list[PackageRecord]] = []
    after = 0
    while page := await store.inbox(H41, after, 2):
        pages.append(page)
        after = page[-1].seq
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [r for p in pages for r in p] == mine
    assert await store.inbox(H41, mine[-1].seq, 100) == []
    assert await store.inbox(H41, mine[1].seq, 1) == [mine[2]]
    assert len(await store.inbox(H10, 0, 100)) == 7
    assert await store.inbox(G22, 0, 100) == []  # the sender's own packages are not in it


async def test_inbox_holds_exactly_the_pending_states(store: Store) -> None:
    """Drive one delivery into each state; the inbox shows exactly those in PENDING."""
    paths: dict[DeliveryState, list[DeliveryEvent]] = {
        S.QUEUED: [],
        S.DELIVERED: [E.FETCHED],
        S.ACKNOWLEDGED: [E.FETCHED, E.ACKED],
        S.FAILED: [E.GAVE_UP],
        S.RECALLED: [E.RECALLED],
    }
    ids: dict[DeliveryState, str] = {}
    for n, (state, events) in enumerate(paths.items(), start=1):
        p = package(n, recipients=(H41,))
        await store.insert_package(p)
        for event in events:
            await store.apply_event(p.id, H41, event, T0 + timedelta(minutes=n))
        assert (await states(store, p.id))[H41] is state
        ids[state] = p.id
    assert set(paths) == set(DeliveryState)
    assert {r.id for r in await store.inbox(H41, 0, 100)} == {ids[s] for s in PENDING}


async def test_an_ack_takes_the_package_out_of_one_inbox_only(store: Store) -> None:
    p = package(1, recipients=(H41, H10))
    await store.insert_package(p)
    await store.apply_event(p.id, H41, E.ACKED, T0)
    assert await store.inbox(H41, 0, 10) == []
    assert [r.id for r in await store.inbox(H10, 0, 10)] == [p.id]


# -- lifecycle ------------------------------------------------------------------------------


async def test_apply_event_follows_the_lifecycle_table(store: Store) -> None:
    p = package(1, recipients=(H41,))
    await store.insert_package(p)
    steps = [
        (E.GAVE_UP, S.FAILED),
        (E.FETCHED, S.DELIVERED),
        (E.PUSHED, S.DELIVERED),
        (E.ACKED, S.ACKNOWLEDGED),
        (E.ACKED, S.ACKNOWLEDGED),
        (E.FETCHED, S.ACKNOWLEDGED),
    ]
    state = S.QUEUED
    for minute, (event, expected) in enumerate(steps, start=1):
        at = T0 + timedelta(minutes=minute)
        delivery = await store.apply_event(p.id, H41, event, at)
        assert expected is next_state(state, event)
        assert delivery is not None
        assert (delivery.package_id, delivery.recipient) == (p.id, H41)
        assert delivery.state is expected
        assert delivery.status_code is None
        state = expected
        [stored] = await store.deliveries(p.id)
        assert stored.state is expected


async def test_apply_events_moves_several_in_one_write_and_reports_each(store: Store) -> None:
    """A batched ack (or read): each delivery moves as apply_event would move it; one the
    table cannot move is reported and left, one that does not exist is None; each real move
    is logged once, a repeat changes nothing."""
    for n in (1, 2, 3):
        await store.insert_package(package(n, recipients=(H41,)))
    await store.apply_event("pkg-0003", H41, E.RECALLED, T0)
    head_before = (await store.log_head())[0]
    at = T0 + timedelta(minutes=5)
    ids = ["pkg-0001", "pkg-0002", "pkg-0003", "pkg-0404"]
    moved = await store.apply_events(ids, H41, E.FETCHED, at)  # a read carrying them
    assert [getattr(m, "state", None) for m in moved[:2]] == [S.DELIVERED, S.DELIVERED]
    assert isinstance(moved[2], InvalidTransition) and moved[2].state is S.RECALLED
    assert moved[3] is None
    assert (await store.log_head())[0] == head_before + 2
    acked = await store.apply_events(ids, H41, E.ACKED, at)  # an ack of a recall: a no-op
    assert [getattr(m, "state", None) for m in acked] == [
        S.ACKNOWLEDGED, S.ACKNOWLEDGED, S.RECALLED, None
    ]  # fmt: skip
    assert (await store.log_head())[0] == head_before + 4
    again = await store.apply_events(ids[:2], H41, E.ACKED, at + timedelta(minutes=1))
    assert [m.updated_at for m in again if isinstance(m, Delivery)] == [at, at]
    assert (await store.log_head())[0] == head_before + 4
    assert [d.state for d in await store.deliveries("pkg-0003")] == [S.RECALLED]
    assert await store.apply_events([], H41, E.ACKED, at) == []


async def test_apply_event_records_when_the_state_changed(store: Store) -> None:
    p = package(1, recipients=(H41,))
    await store.insert_package(p)
    fetched = T0 + timedelta(minutes=1)
    delivery = await store.apply_event(p.id, H41, E.FETCHED, fetched)
    assert delivery is not None and delivery.updated_at == fetched
    assert (await store.deliveries(p.id))[0] == delivery


async def test_apply_event_keeps_the_status_code(store: Store) -> None:
    edoc = package(1, recipients=(H41,))
    await store.insert_package(edoc)
    update = StatusUpdate(edoc.id, H41, "02")
    await store.insert_package(
        package(
            2,
            kind=PackageKind.STATUS,
            sender=H41,
            recipients=(G22,),
            key="st",
            status_update=update,
        )
    )
    delivery = await store.apply_event(edoc.id, H41, E.ACKED, T0 + timedelta(hours=1))
    assert delivery is not None and delivery.status_code == "02"
    assert (await store.deliveries(edoc.id))[0].status_code == "02"


async def test_apply_event_on_an_unknown_delivery_is_none(store: Store) -> None:
    p = package(1, recipients=(H41,))
    await store.insert_package(p)
    assert await store.apply_event("pkg-none", H41, E.ACKED, T0) is None
    assert await store.apply_event(p.id, H10, E.ACKED, T0) is None  # not a recipient
    assert (await states(store, p.id)) == {H41: S.QUEUED}
    # The store still takes writes.
    assert (await store.insert_package(package(2)))[1]


@pytest.mark.parametrize(
    ("path", "illegal"),
    [
        ([E.RECALLED], E.FETCHED),
        ([E.FETCHED], E.RECALLED),
        ([E.ACKED], E.RECALLED),
        ([E.FETCHED, E.ACKED], E.RECALLED),
    ],
    ids=lambda v: "-".join(v) if isinstance(v, list) else str(v),
)
async def test_an_illegal_move_raises_and_changes_nothing(
    store: Store, path: list[DeliveryEvent], illegal: DeliveryEvent
) -> None:
    p = package(1, recipients=(H41,))
    await store.insert_package(p)
    for event in path:
        await store.apply_event(p.id, H41, event, T0 + timedelta(minutes=1))
    before = await store.deliveries(p.id)
    with pytest.raises(InvalidTransition) as caught:
        await store.apply_event(p.id, H41, illegal, T0 + timedelta(minutes=2))
    assert caught.value.state is before[0].state
    assert caught.value.event is illegal
    assert await store.deliveries(p.id) == before
    # The failed move left no transaction open: the store still takes writes.
    assert (await store.insert_package(package(2)))[1]
    assert await store.apply_event("pkg-0002", H41, E.FETCHED, T0) is not None


# -- health and durability ------------------------------------------------------------------


async def test_ping_while_open_and_unavailable_after_close(store: Store) -> None:
    await store.ping()
    await store.close()
    with pytest.raises(Unavailable):
        await store.ping()
    with pytest.raises(Unavailable):
        await store.get_agency(H41)
    with pytest.raises(Unavailable):
        await store.insert_package(package(1))
    await store.close()  # closing twice is harmless


async def test_everything_survives_close_and_reopen(store: Store, backend: Backend) -> None:
    await store.add_agency(agency(H41, 1))
    await store.add_agency(agency(H10, 2))
    await store.set_agency_active(H10, False)
    first, _ = await store.insert_package(package(1, body=b"\x00\x01\xfe\xff"))
    second, _ = await store.insert_package(package(2, recipients=(H41,)))
    await store.apply_event(first.id, H41, E.ACKED, T0 + timedelta(hours=1))
    await store.apply_event(first.id, H10, E.FETCHED, T0 + timedelta(hours=1))
    before = (
        await store.list_agencies(),
        await store.deliveries(first.id),
        await store.inbox(H41, 0, 10),
        await store.inbox(H10, 0, 10),
    )
    await store.close()

    again = backend.open()
    await again.open()
    try:
        after = (
            await again.list_agencies(),
            await again.deliveries(first.id),
            await again.inbox(H41, 0, 10),
            await again.inbox(H10, 0, 10),
        )
        assert after == before
        assert await again.get_package(first.id) == (first, b"\x00\x01\xfe\xff")
        assert await again.find_by_key(G22, package(2).idempotency_key) == second
        # The idempotency survives too, and sequence numbers keep growing.
        assert await again.insert_package(package(2, recipients=(H41,))) == (second, False)
        third, created = await again.insert_package(package(3))
        assert created and third.seq > second.seq
    finally:
        await again.close()


async def test_committed_data_is_in_the_file_while_the_store_runs(
    store: Store, backend: Backend
) -> None:
    """A returned insert is visible to another process reading the file (it is committed)."""
    path = sqlite_only(backend)
    await store.add_agency(agency(H41, 1))
    await store.insert_package(package(1))
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT count(*) FROM packages").fetchone() == (1,)
        assert db.execute("SELECT count(*) FROM deliveries").fetchone() == (2,)
        assert db.execute("SELECT count(*) FROM agencies").fetchone() == (1,)


async def test_the_file_is_in_wal_mode(store: Store, backend: Backend) -> None:
    path = sqlite_only(backend)
    await store.ping()
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_the_writer_keeps_its_savepoints_in_memory_and_checkpoints_seldom(
    store: Store, backend: Backend
) -> None:
    """The group commit's savepoints copy the pages the group shares into a sub-journal,
    which on disk cost a third of the writer's system calls; a checkpoint every 1,000 pages
    copied the same pages again and again; the copying is done beside the writer, whose own
    checkpoint is the WAL's backstop (see axis.store.sqlite)."""
    sqlite_only(backend)
    from axis.store.sqlite import WAL_AUTOCHECKPOINT_PAGES, SqliteStore

    assert isinstance(store, SqliteStore)

    def settings(conn: sqlite3.Connection) -> tuple[object, ...]:
        return (
            conn.execute("PRAGMA temp_store").fetchone()[0],
            conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0],
            conn.execute("PRAGMA synchronous").fetchone()[0],
        )

    assert await store._w.call(settings) == (2, WAL_AUTOCHECKPOINT_PAGES, 2)  # noqa: SLF001
    assert WAL_AUTOCHECKPOINT_PAGES > 1000  # SQLite's default
    assert store._checkpointer is None  # noqa: SLF001 - only the serving hub's store has one


async def test_the_serving_hubs_store_copies_the_wal_beside_its_writer(tmp_path: Path) -> None:
    """The hub's own store runs the WAL checkpointer while open, and stops it on close (a
    reopened store starts a new one)."""
    from axis.store import open_store
    from axis.store.sqlite import SqliteStore

    store = open_store(str(tmp_path / "axis.db"), serving=True)
    assert isinstance(store, SqliteStore)
    checkpointer = store._checkpointer  # noqa: SLF001
    assert checkpointer is not None
    for _ in range(2):
        await store.open()
        assert checkpointer.running
        await store.insert_package(package(1, recipients=(H41,)))
        await store.close()
        assert not checkpointer.running


# -- concurrency ----------------------------------------------------------------------------


async def test_concurrent_inserts_with_distinct_keys_all_commit(store: Store) -> None:
    packages = [package(n, recipients=(H41,)) for n in range(1, 51)]
    results = await asyncio.gather(*(store.insert_package(p) for p in packages))
    assert all(created for _, created in results)
    assert [r.id for r, _ in results] == [p.id for p in packages]
    assert len({r.seq for r, _ in results}) == 50
    inbox = await store.inbox(H41, 0, 100)
    assert {r.id for r in inbox} == {p.id for p in packages}
    assert [r.seq for r in inbox] == sorted(r.seq for r in inbox)


async def test_writes_committed_together_chain_and_count_only_what_committed(
    store: Store,
) -> None:
    """Writes queued at once commit together (SQLite's group; PostgreSQL's chainer): the log
    holds each committed change's entries once, in one verified chain, the observers hear of
    each once, and the counters are the sums of what committed, never of a refused write."""
    told: list[int] = []
    store.observe(lambda entry: told.append(entry.seq))
    first = package(1, recipients=(H41,))
    await store.insert_package(first)
    refused = replace(package(99, key=first.idempotency_key), sha256="f" * 64)
    news = [package(n, recipients=(H41, H10)) for n in range(2, 42)]
    writes: list[Awaitable[object]] = [store.insert_package(p) for p in news]
    writes.insert(20, store.insert_package(refused))
    writes += [store.apply_event(first.id, H41, e, T0) for e in (E.FETCHED, E.ACKED)]
    results = await asyncio.gather(*writes, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], DuplicateConflict)

    async def chained() -> bool:
        return await store.unchained_entries() == 0

    await eventually(chained)
    entries = await store.log_entries(0, 1000)
    assert verify_chain(entries) is None
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    assert refused.id not in {e.package_id for e in entries}
    received = [str(e.package_id) for e in entries if e.event == "received"]
    assert sorted(received) == sorted([first.id, *(p.id for p in news)])

    async def all_told() -> bool:
        return len(told) >= len(entries)

    await eventually(all_told)
    assert sorted(told) == [e.seq for e in entries]
    assert await store.counter_total("documents") == 41
    assert await store.counter_total("deliveries") == 1 + 2 * 40
    assert await store.counter_total("pending") == 2 * 40


async def test_concurrent_resends_of_one_package_create_it_once(store: Store) -> None:
    base = package(1)
    copies = [replace(base, id=f"pkg-copy-{i:02d}", answer=f'{{"copy": {i}}}') for i in range(20)]
    results = await asyncio.gather(*(store.insert_package(p) for p in copies))
    created = [record for record, was_created in results if was_created]
    assert len(created) == 1
    winner = created[0]
    assert all(record == winner for record, _ in results)
    assert await store.find_by_key(base.sender, base.idempotency_key) == winner
    assert [r.id for r in await store.inbox(H41, 0, 100)] == [winner.id]
    assert len(await store.deliveries(winner.id)) == 2


async def test_concurrent_events_on_one_delivery_stay_consistent(store: Store) -> None:
    p = package(1, recipients=(H41,))
    await store.insert_package(p)
    events = [E.FETCHED, E.PUSHED, E.ACKED] * 10
    results = await asyncio.gather(
        *(store.apply_event(p.id, H41, e, T0) for e in events), return_exceptions=True
    )
    assert not [r for r in results if isinstance(r, BaseException)]
    assert (await states(store, p.id)) == {H41: S.ACKNOWLEDGED}


# -- known bugs -----------------------------------------------------------------------------


async def test_a_repeated_event_returns_the_stored_delivery(store: Store) -> None:
    p = package(1, recipients=(H41,))
    await store.insert_package(p)
    await store.apply_event(p.id, H41, E.ACKED, T0 + timedelta(minutes=1))
    repeated = await store.apply_event(p.id, H41, E.ACKED, T0 + timedelta(minutes=2))
    assert [repeated] == await store.deliveries(p.id)


async def test_a_cancelled_insert_leaves_no_open_transaction(
    store: Store, backend: Backend
) -> None:
    path = sqlite_only(backend)
    await store.ping()
    assert isinstance(store, SqliteStore)
    # Another process holds the write lock, so the insert waits inside the database call.
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        task = asyncio.create_task(store.insert_package(package(1)))
        await asyncio.sleep(0)  # the task runs to its first wait: the insert is queued

        async def taken_by_the_writer() -> bool:
            # Off the queue: the writer thread holds it, and waits in BEGIN IMMEDIATE.
            return store._w._queue.empty() and not task.done()

        await eventually(taken_by_the_writer, timeout=10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        other.execute("ROLLBACK")
    await store.add_agency(agency(H41, 1))  # returns as if committed
    with contextlib.closing(sqlite3.connect(path, timeout=0.5)) as db:
        seen = db.execute("SELECT count(*) FROM agencies").fetchone()
    assert seen == (1,), "add_agency returned but its row is not committed"


# -- several workers on one database ---------------------------------------------------------


async def test_two_workers_writing_at_once_keep_one_chain_and_one_order(
    store: Store, backend: Backend
) -> None:
    """Two stores on one database (two hub workers): concurrent writes make one unbroken
    log chain, and an inbox read once they have committed lists every package, in order."""
    if backend.name != "postgres":
        pytest.skip("one SQLite file has one writer process by design (the serve lock)")
    other = backend.open()
    await other.open()
    try:
        batches = [
            [store.insert_package(package(n, recipients=(H41,))) for n in range(1, 41)],
            [other.insert_package(package(n, recipients=(H41,))) for n in range(41, 81)],
        ]
        results = await asyncio.gather(*batches[0], *batches[1])
        assert all(created for _, created in results)
        entries = await store.log_entries(0, 1000)
        assert [e.seq for e in entries] == list(range(1, 81))
        assert verify_chain(entries) is None
        inbox = await other.inbox(H41, 0, 1000)
        assert len(inbox) == 80 and [r.seq for r in inbox] == sorted(r.seq for r in inbox)
    finally:
        await other.close()


async def test_two_workers_changing_the_same_deliveries_keep_chain_counters_and_states(
    store: Store, backend: Backend
) -> None:
    """No write lock: two workers fetch, acknowledge and answer with statuses the same
    deliveries at once, in batches given in opposite orders. Each delivery moves once per
    event, the chain holds every move once and verifies, nothing waits unchained, and the
    counters (summed by the chainer) say what the deliveries say."""
    if backend.name != "postgres":
        pytest.skip("one SQLite file has one writer process by design (the serve lock)")
    other = backend.open()
    await other.open()
    try:
        ids = [f"pkg-{n:04d}" for n in range(1, 31)]
        await asyncio.gather(
            *((store, other)[n % 2].insert_package(package(n)) for n in range(1, 31))
        )
        at = T0 + timedelta(minutes=5)
        for event in (E.FETCHED, E.ACKED):
            await asyncio.gather(
                store.apply_events(ids, H41, event, at),
                other.apply_events(ids[::-1], H41, event, at),
                *(s.apply_event(pid, H10, event, at) for pid in ids for s in (store, other)),
            )
        entries = await other.log_entries(0, 10_000)
        assert verify_chain(entries) is None
        moves = [(e.package_id, e.organ_id, e.event) for e in entries if e.event != "received"]
        assert len(moves) == len(set(moves)) == 30 * 2 * 2
        assert await store.unchained_entries() == 0
        assert await other.unchained_entries() == 0
        assert await store.counter_total("documents") == 30
        assert await store.counter_total("pending") == 0
        states = {d.state for d in await store.deliveries_of(ids)}
        assert states == {S.ACKNOWLEDGED}
    finally:
        await other.close()


async def test_one_document_sent_through_two_workers_at_once_is_stored_once(
    store: Store, backend: Backend
) -> None:
    """A resend racing the first send on another worker (no write lock orders them): one is
    created, the other answers with the first record, as any resend does."""
    if backend.name != "postgres":
        pytest.skip("one SQLite file has one writer process by design (the serve lock)")
    other = backend.open()
    await other.open()
    try:
        for n in range(1, 11):
            first, second = await asyncio.gather(
                store.insert_package(package(n)), other.insert_package(package(n))
            )
            assert sorted([first[1], second[1]]) == [False, True]
            assert first[0].id == second[0].id
        assert await store.counter_total("documents") == 10
    finally:
        await other.close()


async def test_entries_a_killed_worker_left_unchained_are_chained_by_the_next(
    backend: Backend,
) -> None:
    """A worker killed between its commit and the chainer's pass leaves its entries pending:
    the change is there, its trace shows them, verification reads them as the log's tail, the
    lag says how many, and the next worker to open links them (the chain verifies) and folds
    their counters."""
    if backend.name != "postgres":
        pytest.skip("SQLite's one writer chains each entry where it is written")
    from axis.core import pki
    from axis.store.postgres import PostgresStore
    from axis.usecases.verification import verify_log

    def honest(n: int) -> NewPackage:  # its sha256 is its body's, as verification checks
        return package(n, sha=hashlib.sha256(package(n).body).hexdigest())

    _, hub_cert = pki.issue_hub_cert(*pki.create_ca("Axis development CA"))
    dying = backend.open()
    assert isinstance(dying, PostgresStore)
    await dying.open()
    await dying.insert_package(honest(1))
    assert await dying.log_head() == (1, (await dying.log_tail(1))[0].hash)  # chained
    await dying._chainer.stop()  # noqa: SLF001 - as if killed: nothing links what follows
    await dying.insert_package(honest(2))
    await dying.apply_event("pkg-0001", H41, E.FETCHED, T0 + timedelta(minutes=1))
    try:
        assert await dying.unchained_entries() == 2
        assert [h.event for h in await dying.trace("pkg-0001")] == ["received", "delivered"]
        assert await dying.counter_total("documents") == 1  # pkg-0002's count not folded yet
        report = await verify_log(dying, hub_cert)
        assert report.ok, report.problem
        assert report.entries == 1
    finally:
        await dying.close()
    successor = backend.open()
    await successor.open()
    try:
        assert await successor.unchained_entries() == 0
        entries = await successor.log_entries(0, 100)
        assert verify_chain(entries) is None
        assert [(e.event, e.package_id) for e in entries] == [
            ("received", "pkg-0001"),
            ("received", "pkg-0002"),
            ("delivered", "pkg-0001"),
        ]
        assert await successor.counter_total("documents") == 2
        report = await verify_log(successor, hub_cert)
        assert report.ok and report.entries == 3, report.problem
    finally:
        await successor.close()


async def test_a_change_returns_at_its_commit_and_every_read_of_the_log_sees_it(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL links a change's entries just after its commit, not before its call returns
    (a pass for every change cost five round trips each): the change is pending when its call
    returns, and a read of the log or the statistics, in this worker or another, waits for a
    pass and sees it. A change to the directory still returns chained (its observers, the
    directory kept in memory among them, have heard of it). Left alone, a pass follows by
    itself, long before the tick."""
    if backend.name != "postgres":
        pytest.skip("SQLite chains and counts in the commit itself")
    from axis.store import postgres

    monkeypatch.setattr(postgres, "CHAIN_TICK_S", 3600.0)
    store, other = backend.open(), backend.open()
    assert isinstance(store, postgres.PostgresStore)
    await store.open()
    await other.open()
    try:
        store._chainer.delay_s = 3600.0  # noqa: SLF001 - no pass but the ones a read asks for
        told: list[str] = []
        store.observe(lambda entry: told.append(entry.event))
        await store.insert_package(package(1))
        assert await store.unchained_entries() == 1 and told == []
        assert [e.package_id for e in await other.log_entries(0, 10)] == ["pkg-0001"]
        assert await store.unchained_entries() == 0
        await store.apply_event("pkg-0001", H41, E.FETCHED, T0)
        assert await store.unchained_entries() == 1
        assert await store.counter_total("documents") == 1
        assert [e.event for e in await store.log_tail(5)] == ["received", "delivered"]
        head = await store.log_head()
        await store.insert_package(package(2))
        assert (await other.log_head())[0] == head[0] + 1
        rows = await other.counter_rows(None, None)
        assert sum(n for _, metric, _, n in rows if metric == "documents") == 2

        await store.add_agency(agency("G99"))
        assert await store.unchained_entries() == 0 and told[-1] == "agency-registered"

        store._chainer.delay_s = 0.05  # noqa: SLF001
        await store.insert_package(package(3))

        async def chained() -> bool:
            return await store.unchained_entries() == 0

        await eventually(chained, timeout=30)
    finally:
        await other.close()
        await store.close()


async def test_a_trace_reads_the_chain_and_its_pending_tail_as_one_state(
    backend: Backend,
) -> None:
    """A change's hops are in the log or still pending, never in neither: a chain pass between
    reading the two (PostgreSQL chains just after the commit) must not hide them."""
    if backend.name != "postgres":
        pytest.skip("SQLite chains in the commit itself")
    from axis.store.postgres import PostgresStore

    store = backend.open()
    assert isinstance(store, PostgresStore)
    await store.open()
    try:
        store._chainer.delay_s = 3600.0  # noqa: SLF001 - no pass but the one below
        await store.insert_package(package(1))
        read = store._read
        reads = 0

        async def read_then_chain(
            sql: str, args: tuple[Any, ...] = (), *, keyed: bool = False
        ) -> list[Any]:
            nonlocal reads
            rows = await read(sql, args, keyed=keyed)
            reads += 1
            if reads == 1:  # a pass, as another worker's or the timer's, right after
                await store.chain_pending()
            return rows

        store._read = read_then_chain  # type: ignore[method-assign]
        assert [h.event for h in await store.trace("pkg-0001")] == ["received"]
    finally:
        await store.close()


async def test_a_closing_store_chains_what_it_wrote(backend: Backend) -> None:
    """A worker that stops cleanly leaves nothing of its own unchained (its observers hear
    of its last changes), even before its chainer's next pass was due."""
    if backend.name != "postgres":
        pytest.skip("SQLite chains in the commit itself")
    import asyncpg

    from axis.store.postgres import PostgresStore

    store = backend.open()
    assert isinstance(store, PostgresStore)
    await store.open()
    told: list[str] = []
    store.observe(lambda entry: told.append(entry.event))
    store._chainer.delay_s = 3600.0  # noqa: SLF001
    await store.insert_package(package(1))
    assert await store.unchained_entries() == 1
    await store.close()
    assert told == ["received"]
    conn = await asyncpg.connect(backend.url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM log_pending") == 0
    finally:
        await conn.close()


async def test_a_failed_analyze_is_tried_again_at_the_next_pass(
    backend: Backend, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    if backend.name != "postgres":
        pytest.skip("SQLite needs no statistics for generic plans")
    from axis.store import postgres

    store = backend.open()
    assert isinstance(store, postgres.PostgresStore)
    store.analyze_after = 5
    await store.open()
    try:
        monkeypatch.setattr(postgres, "_ANALYZE", "ANALYZE no_such_table")
        for n in range(1, 8):
            await store.insert_package(package(n))
        await store.log_head()  # a pass: it links 7, then tries to analyze, which fails

        async def failed() -> bool:
            return "could not analyze" in caplog.text

        await eventually(failed)
        assert store.analyze_after == 5
        monkeypatch.undo()
        await store.insert_package(package(8))
        await store.log_head()  # the next pass tries again, and doubles once it has

        async def doubled() -> bool:
            return store.analyze_after == 10

        await eventually(doubled)
    finally:
        await store.close()


async def test_the_chainer_outlives_a_failure_of_its_upkeep() -> None:
    """Reads of the log and changes to the directory wait on the chainer's passes: a bug in
    what it does between them (vacuum, analyze) must not end it."""
    from axis.store.postgres import Chainer

    async def chain_pending() -> int:
        return 1

    async def tidy(linked: int) -> None:
        raise RuntimeError("a bug")

    chainer = Chainer(chain_pending, tidy)
    chainer.start()
    try:
        for _ in range(3):
            await asyncio.wait_for(chainer.chained(), 5)
    finally:
        await chainer.stop()


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
async def test_the_chainer_stops_when_asked_just_as_a_pass_is_asked_for(turns: int) -> None:
    """A worker's store closes while the chainer wakes for a pass (a write's soon() timer
    fires, a read asks): the cancellation must not be lost (Python 3.11's wait_for returned
    the event's result instead, the chainer went round again, and closing hung for ever)."""
    from axis.store.postgres import Chainer

    passes = 0

    async def chain_pending() -> int:
        nonlocal passes
        passes += 1
        return 0

    chainer = Chainer(chain_pending)
    chainer.start()
    await asyncio.sleep(0.01)  # waiting for a wake-up
    chainer._wake.set()  # noqa: SLF001 - as the timer of soon() does
    for _ in range(turns):
        await asyncio.sleep(0)
    await asyncio.wait_for(chainer.stop(), 5)
    assert passes <= 1


async def test_a_shared_read_answers_each_call_with_a_read_begun_after_it() -> None:
    """Calls made while a read is in flight are not answered by it (it began before them:
    a change committed just before such a call could be missing): they share the next."""
    from axis.store.postgres import SharedRead

    reads = 0
    release: list[asyncio.Event] = []

    async def read() -> int:
        nonlocal reads
        reads += 1
        began = reads
        release.append(asyncio.Event())
        await release[-1].wait()
        return began

    shared = SharedRead(read)
    first = asyncio.create_task(shared())
    await eventually(lambda: _true(len(release) == 1))
    later = [asyncio.create_task(shared()) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert reads == 1  # the later calls wait for the next read, not a read each
    release[0].set()
    assert await first == 1
    await eventually(lambda: _true(len(release) == 2))
    release[1].set()
    assert await asyncio.gather(*later) == [2, 2, 2]
    assert reads == 2
    await shared.close()


async def _true(value: bool) -> bool:
    return value


async def test_a_shared_read_gives_its_failure_to_its_callers_and_outlives_a_cancelled_one() -> (
    None
):
    from axis.store.postgres import SharedRead

    outcomes: list[Any] = [Unavailable("the database is down"), 7]
    gate = asyncio.Event()

    async def read() -> int:
        await gate.wait()
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return int(outcome)

    shared = SharedRead(read)
    failing = [asyncio.create_task(shared()) for _ in range(2)]
    await asyncio.sleep(0.01)
    gate.set()
    for call in failing:
        with pytest.raises(Unavailable):
            await call
    gate.clear()
    gone, waiting = asyncio.create_task(shared()), asyncio.create_task(shared())
    await asyncio.sleep(0.01)
    gone.cancel()  # the caller goes: the read it asked for goes on for the other
    gate.set()
    assert await asyncio.wait_for(waiting, 5) == 7
    with pytest.raises(asyncio.CancelledError):
        await gone
    gate.clear()
    stopped = asyncio.create_task(shared())
    await asyncio.sleep(0.01)
    await asyncio.wait_for(shared.close(), 5)  # a store closing: the read in flight ends
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(stopped, 5)


def statements_sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The statements the PostgreSQL stores opened from now on send, in order, as asyncpg's
    query logger sees them."""
    from axis.store import postgres

    sent: list[str] = []

    class Counted(postgres._Connection):  # noqa: SLF001 - the pool's connections, counted
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.add_query_logger(lambda q: sent.append(q.query))

    monkeypatch.setattr(postgres, "_Connection", Counted)
    return sent


async def test_a_write_sends_what_it_need_not_wait_for_together(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a write's statements that have no answer (a status on the delivery it
    answers, the deliveries of a new package, the moves of a batch, the log and counters)
    go to the server together, as one statement: round trips are what a worker spends most
    on. What they write is what separate statements wrote (the other tests of this file)."""
    if backend.name != "postgres":
        pytest.skip("SQLite runs its statements in process: there is no round trip to save")
    from axis.store import postgres

    sent = statements_sent(monkeypatch)
    monkeypatch.setattr(postgres, "CHAIN_TICK_S", 3600.0)  # no pass of the chainer meanwhile
    store = backend.open()
    await store.open()
    try:
        store._chainer.delay_s = 3600.0  # type: ignore[attr-defined]  # noqa: SLF001
        edoc = package(1, recipients=(H41, H10))
        await store.insert_package(edoc)

        sent.clear()
        await store.insert_package(status_of(2, edoc, H41, "03"))
        assert [q.split()[0] for q in sent] == ["WITH"], sent
        sent.clear()
        await store.insert_package(status_of(3, edoc, H41, "01"))  # 01 acknowledges
        # The delivery it acknowledges is read (and locked) first; its code and state go in
        # one update, with the rest.
        assert [q.split()[0] for q in sent] == ["BEGIN;", "SELECT", "WITH", "COMMIT;"], sent
        by_recipient = {d.recipient: d for d in await store.deliveries(edoc.id)}
        assert (by_recipient[H41].status_code, by_recipient[H41].state) == ("01", S.ACKNOWLEDGED)
        assert [p.id for p in await store.inbox(G22, 0, 10)] == ["pkg-0002", "pkg-0003"]
    finally:
        await store.close()


async def test_a_statement_has_one_text_whatever_the_length_of_its_lists(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a list of values (the packages a batch moves, the bodies a page carries)
    is one array parameter, not a placeholder each: a statement's text does not change with
    its lists' lengths, so the statement asyncpg prepared once serves every batch (it keeps
    100 a connection, and lists of every length made some 380 texts over a run: most were
    prepared again, a round trip and a plan more)."""
    if backend.name != "postgres":
        pytest.skip("the texts asyncpg prepares: a PostgreSQL matter")
    sent = statements_sent(monkeypatch)
    store = backend.open()
    await store.open()
    try:
        ids = [
            (await store.insert_package(package(n, recipients=(H41,))))[0].id for n in range(1, 9)
        ]
        at = datetime(2026, 1, 2, tzinfo=UTC)
        texts = []
        for batch in (ids[:1], ids[1:4], ids[4:8]):
            sent.clear()
            moved = await store.apply_events(batch, H41, E.FETCHED, at)
            assert [getattr(d, "state", None) for d in moved] == [S.DELIVERED] * len(batch)
            bodies = await store.package_bodies(batch)
            assert sorted(bodies) == sorted(batch)
            texts.append(sent[:])
        assert texts[0] == texts[1] == texts[2], texts
        assert all("ANY($" in q for q in texts[0] if "package_id" in q or "FROM packages" in q)
    finally:
        await store.close()


def test_lists_go_to_postgresql_as_arrays() -> None:
    """The shared SQL's ``IN (?, ?, …)`` lists as PostgreSQL gets them: one array each, the
    other values as they were; a count of values that does not fit is our bug, said so."""
    from axis.store.postgres import pg_call

    sql = "SELECT a FROM t WHERE r = ? AND t.p IN (?, ?, ?) AND s NOT IN (?) AND q = ? LIMIT ?"
    assert pg_call(sql, ("r", 1, 2, 3, "s", "q", 5)) == (
        "SELECT a FROM t WHERE r = $1 AND t.p = ANY($2) AND s <> ALL($3) AND q = $4 LIMIT $5",
        ["r", [1, 2, 3], ["s"], "q", 5],
    )
    assert pg_call("INSERT INTO t (a, b) VALUES (?, ?)", (1, 2)) == (
        "INSERT INTO t (a, b) VALUES ($1, $2)", [1, 2]
    )  # fmt: skip
    assert pg_call("SELECT 1 FROM t WHERE x IN (SELECT y FROM u WHERE z = ?)", (1,))[1] == [1]
    with pytest.raises(ValueError, match="values for the placeholders"):
        pg_call(sql, ("r", 1, 2, "s", "q", 5))


async def test_a_key_taken_by_a_write_held_to_the_end_rolls_back_all_of_it(store: Store) -> None:
    """A unique key broken by a statement sent with the log at the end of a write (a
    package's deliveries) is a conflict like any other, and nothing of the write stays."""
    with pytest.raises(DuplicateConflict):
        await store.insert_package(package(1, recipients=(H41, H41)))
    assert await store.find_by_key(G22, "1/CV-VPCP|0") is None
    assert await store.inbox(H41, 0, 10) == []
    await store.insert_package(package(1, recipients=(H41,)))  # the key is free
    assert [p.id for p in await store.inbox(H41, 0, 10)] == ["pkg-0001"]


async def test_the_chainer_keeps_the_pending_tables_small(backend: Backend) -> None:
    """Every pending row is deleted moments after its insert: without a vacuum the tables
    keep every dead row, and each pass scans them all again. The CI's server runs with
    autovacuum off, so the chainer vacuums them itself, and analyzes the big tables as they
    grow (the planner's generic plans are made from their statistics)."""
    if backend.name != "postgres":
        pytest.skip("SQLite keeps no pending tables")
    import asyncpg

    from axis.store.postgres import PostgresStore

    store = backend.open()
    assert isinstance(store, PostgresStore)
    store.vacuum_after = 50
    store.analyze_after = 100
    await store.open()
    try:
        for n in range(1, 401):
            await store.insert_package(package(n))
            if n % 20 == 0:
                await store.log_head()  # a pass now (as reads ask for), or a few would do
    finally:
        await store.close()
    conn = await asyncpg.connect(backend.url)
    try:
        pages = await conn.fetchval("SELECT pg_relation_size('log_pending') / 8192")
        vacuums = await conn.fetchval(
            "SELECT vacuum_count FROM pg_stat_user_tables WHERE relid = 'log_pending'::regclass"
        )
        analyzed = await conn.fetch(
            "SELECT relname, analyze_count FROM pg_stat_user_tables"
            " WHERE relid IN ('packages'::regclass, 'deliveries'::regclass)"
        )
    finally:
        await conn.close()
    # 400 entries of ~250 bytes kept dead fill 12 pages or more; vacuumed every 50, the
    # table reuses its first few.
    assert vacuums >= 1
    assert pages <= 4, f"log_pending grew to {pages} pages"
    # Analyzed after 100 entries, then 200 more: twice in 400 (the third would be at 700).
    assert {name: n for name, n in analyzed} == {"packages": 2, "deliveries": 2}
    assert store.analyze_after == 400


async def test_two_workers_never_claim_the_same_push(store: Store, backend: Backend) -> None:
    if backend.name != "postgres":
        pytest.skip("one SQLite file has one writer process by design (the serve lock)")
    for n in range(1, 31):
        await store.insert_package(replace(package(n, recipients=(H41,)), push_recipients=(H41,)))
    other = backend.open()
    await other.open()
    try:
        now = T0 + timedelta(hours=1)
        claims = await asyncio.gather(
            *(s.claim_pushes(f"worker-{i}", now, 60, 5) for i in range(6) for s in (store, other))
        )
        claimed = [(job.package_id, job.recipient) for jobs in claims for job in jobs]
        assert len(claimed) == len(set(claimed)) == 30
        # A dead worker's leases expire and are taken over; a live one's are not.
        assert await other.claim_pushes("late", now + timedelta(seconds=30), 60, 100) == []
        taken_over = await other.claim_pushes("late", now + timedelta(seconds=61), 60, 100)
        assert len(taken_over) == 30
    finally:
        await other.close()


async def test_the_per_agency_push_cap_holds_across_workers(store: Store, backend: Backend) -> None:
    """Two pushes in flight to one agency, however many workers claim: a dead endpoint holds
    no more (the live leases of every worker count)."""
    if backend.name != "postgres":
        pytest.skip("one SQLite file has one writer process by design (the serve lock)")
    for n in range(1, 11):
        await store.insert_package(replace(package(n, recipients=(H41,)), push_recipients=(H41,)))
    other = backend.open()
    await other.open()
    try:
        now = T0 + timedelta(hours=1)
        first = await store.claim_pushes("a", now, 60, 10, per_recipient=2)
        second = await other.claim_pushes("b", now, 60, 10, per_recipient=2)
        assert (len(first), len(second)) == (2, 0)
    finally:
        await other.close()


async def test_the_push_cap_counts_the_leases_a_worker_holds_already(store: Store) -> None:
    """One store's contract on SQLite and PostgreSQL alike: a second claim by the same owner
    takes nothing for an agency that has ``per_recipient`` pushes in flight, and a delivery
    that leaves queued (fetched while its push was out) frees its place."""
    for n in range(1, 11):
        await store.insert_package(replace(package(n, recipients=(H41,)), push_recipients=(H41,)))
    now = T0 + timedelta(hours=1)
    first = await store.claim_pushes("a", now, 60, 10, per_recipient=2)
    assert len(first) == 2
    assert await store.claim_pushes("a", now, 60, 10, per_recipient=2) == []
    await store.apply_event(first[0].package_id, H41, DeliveryEvent.FETCHED, now)
    again = await store.claim_pushes("a", now, 60, 10, per_recipient=2)
    assert len(again) == 1 and again[0].package_id not in {j.package_id for j in first}


# -- systems of the national axis's face --------------------------------------------------------


async def test_systems_are_added_listed_and_revoked(store: Store) -> None:
    system = System("00.53.W00", "Trung tâm tích hợp Tây Ninh", b"sealed", T0)
    await store.add_system(system)
    with pytest.raises(DuplicateConflict):
        await store.add_system(system)
    assert await store.get_system("00.53.W00") == system
    assert await store.list_systems() == [system]
    assert await store.set_system_active("00.53.W00", False)
    assert not await store.set_system_active("00.53.W99", False)
    revoked = await store.get_system("00.53.W00")
    assert revoked is not None and not revoked.active
    events = [(e.event, e.detail) for e in await store.log_tail(10)]
    assert ("system-added", "00.53.W00") in events and ("system-revoked", "00.53.W00") in events


async def test_a_systems_agencies_and_what_waits_for_them(store: Store) -> None:
    system = "00.53.W00"
    await store.add_system(System(system, "Trung tâm", b"sealed", T0))
    member = replace(agency(H41, 1), system_id=system, cert_pem=b"")
    await store.add_agency(member)
    await store.add_agency(replace(agency(H10, 2), system_id=system))
    await store.add_agency(agency(G22))
    assert [a.organ_id for a in await store.system_agencies(system)] == [H10, H41]
    assert not member.has_certificate
    # One package to two of the system's agencies is one item, with both deliveries.
    await store.insert_package(package(1, notes="unsigned (none)"))
    await store.insert_package(package(2, recipients=(H41,), at=T0 + timedelta(days=2)))
    await store.insert_package(package(3, kind=PackageKind.STATUS, recipients=(H41,)))
    await store.insert_package(package(4, sender=H41, recipients=(G22,)))  # not for the system

    async def page(query: ItemQuery, kind: PackageKind = PackageKind.EDOC) -> list[Any]:
        found = await store.received_items(system, kind, query)
        return [(p.id, [d.recipient for d in ds], p.notes) for p, ds in found]

    assert await page(ItemQuery()) == [
        ("pkg-0001", [H10, H41], "unsigned (none)"),
        ("pkg-0002", [H41], None),
    ]
    assert await store.count_received(system, PackageKind.EDOC) == 2
    # Pages count packages, not deliveries.
    assert await page(ItemQuery(limit=1)) == [("pkg-0001", [H10, H41], "unsigned (none)")]
    assert await page(ItemQuery(limit=1, offset=1)) == [("pkg-0002", [H41], None)]
    assert await page(ItemQuery(since=T0 + timedelta(days=1))) == [("pkg-0002", [H41], None)]
    second_one = T0 + timedelta(seconds=1)  # pkg-0001's received_at, to the end of its second
    assert [i[0] for i in await page(ItemQuery(until=second_one))] == ["pkg-0001"]
    assert await page(ItemQuery(), PackageKind.STATUS) == [("pkg-0003", [H41], None)]
    assert [d.recipient for d in await store.system_deliveries("pkg-0001", system)] == [H10, H41]
    assert await store.system_deliveries("pkg-0004", system) == []
    # A mark moves nothing, and is what the filters select by.
    assert await store.mark_delivery("pkg-0002", H41, "acceptance")
    assert not await store.mark_delivery("pkg-0002", G22, "done")
    delivery = await store.delivery("pkg-0002", H41)
    assert delivery is not None and (delivery.state, delivery.mark) == (
        DeliveryState.QUEUED,
        "acceptance",
    )

    async def ids(f: ItemFilter) -> list[Any]:
        return [i[0] for i in await page(ItemQuery(f))]

    assert await ids(ItemFilter.INITIAL) == ["pkg-0001"]
    assert await ids(ItemFilter.PROCESSING) == ["pkg-0002"]
    await store.mark_delivery("pkg-0001", H10, "fail")
    assert await ids(ItemFilter.FAIL) == ["pkg-0001"]
    assert await ids(ItemFilter.INITIAL) == ["pkg-0001"]  # its delivery to H41 is untouched
    await store.apply_event("pkg-0002", H41, DeliveryEvent.ACKED, T0 + timedelta(days=3))
    assert await ids(ItemFilter.PENDING) == ["pkg-0001"]
    assert await store.count_received(system, PackageKind.EDOC) == 1


async def test_an_inbox_page_reads_the_index_in_order(store: Store, backend: Backend) -> None:
    """A page of the inbox costs what the page holds: the pending deliveries of one agency,
    read in order from a partial index, never gathered and sorted (issue 16, class 5)."""
    sql = (
        "SELECT p.id FROM deliveries d JOIN packages p ON p.id = d.package_id WHERE"
        " d.recipient = '000.00.00.H41' AND d.state IN ('delivered', 'failed', 'queued')"
        " AND d.seq > 0 ORDER BY d.seq LIMIT 100"
    )
    if backend.path is not None:
        with contextlib.closing(sqlite3.connect(backend.path)) as db:
            plan = " ".join(str(row) for row in db.execute("EXPLAIN QUERY PLAN " + sql))
        assert "deliveries_pending" in plan and "TEMP B-TREE" not in plan, plan
    for n in range(1, 30):
        await store.insert_package(package(n, recipients=(H41,)))
    assert [p.id for p in await store.inbox(H41, 10, 5)] == [f"pkg-{n:04d}" for n in range(11, 16)]


async def test_writes_plan_each_statement_once_and_reads_for_their_values(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: the write steps and the chain's passes run on connections that use
    generic plans (a write's statements, rows from arrays and rows by their keys, gain nothing
    from a plan for their values, which the server otherwise makes afresh at every call), and
    so do the reads of rows by a list of their keys; the other reads, and the one write that
    picks rows by ranges of time (the claim of due pushes), keep the server's default.
    Closing the store closes both pools."""
    if backend.name != "postgres":
        pytest.skip("SQLite plans each statement for its values anyway")
    import asyncpg

    from axis.store import postgres

    monkeypatch.setattr(postgres, "CHAIN_TICK_S", 3600.0)  # no pass but the one below
    store = backend.open()
    assert isinstance(store, postgres.PostgresStore)
    await store.open()
    writes, reads = store._w, store._p  # noqa: SLF001 - the pools themselves are the subject
    served: list[str] = []

    class Counted:
        """The pool, telling ``served`` each time it is asked for a connection or a query."""

        def __init__(self, pool: asyncpg.Pool, name: str) -> None:
            self.pool, self.name = pool, name

        def __getattr__(self, attr: str) -> Any:
            if attr in ("acquire", "fetch", "fetchrow", "fetchval", "execute", "executemany"):
                served.append(self.name)
            return getattr(self.pool, attr)

    server = await asyncpg.connect(backend.url)
    try:
        default = await server.fetchval("SHOW plan_cache_mode")
        assert await writes.fetchval("SHOW plan_cache_mode") == "force_generic_plan"
        assert await reads.fetchval("SHOW plan_cache_mode") == default
        assert await writes.fetchval("SHOW lock_timeout") == "30s"  # the session's settings too
        store._writes = Counted(writes, "writes")  # noqa: SLF001
        store._pool = Counted(reads, "reads")  # noqa: SLF001
        store._chainer.delay_s = 3600.0  # noqa: SLF001 - no pass but the one below
        await store.insert_package(package(1))
        assert served == ["writes"]
        assert await store.chain_pending() == 1
        assert served == ["writes", "writes"]
        assert await store.get_record("pkg-0001") is not None
        assert served[2:] == ["reads"]
        await store.claim_pushes("worker-1", T0, 30.0, 10)
        assert served[3:] == ["reads"]
        # Rows found by a list of their keys: one plan serves every call.
        assert list(await store.package_bodies(["pkg-0001"])) == ["pkg-0001"]
        assert served[4:] == ["writes"]
        # A snapshot waits for a chain pass, then reads on one connection of the reads', in
        # its transaction: the keyed read too.
        async with store.snapshot():
            assert list(await store.package_bodies(["pkg-0001"])) == ["pkg-0001"]
        assert served[5:] == ["writes", "reads"]
    finally:
        await server.close()
        await store.close()
    for pool in (writes, reads):
        assert pool.is_closing()
        with pytest.raises(asyncpg.InterfaceError):
            await pool.fetchval("SELECT 1")
