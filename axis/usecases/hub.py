"""The hub's use cases: take a package, hand it out, record acknowledgements.

This is the layer between the thin web handlers and the store. It asks the pure core to parse
and verify, applies the routing rules of SPEC §5, and lets the store commit. It knows no aiohttp
and no SQL: the same :class:`Hub` will serve the native-API face of SPEC §9.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509

from axis.core import intake, lifecycle, pki
from axis.core.clock import utc_now
from axis.core.formats import BusinessDocType, Edoc, Package
from axis.core.ids import uuid7_hex
from axis.core.intake import IntakePolicy
from axis.core.lifecycle import DeliveryEvent, InvalidTransition
from axis.core.ratelimit import RateLimit, RateLimiter
from axis.core.receipt import Receipt, ReceiptSigner
from axis.core.signing import Verifier
from axis.core.xmlsafe import ParseLimits
from axis.errors import (
    AxisError,
    DuplicateConflict,
    InputError,
    InvalidSignature,
    NotAllowed,
    RateLimited,
    UnknownDocument,
    UntrustedCertificate,
    retry_after_seconds,
)
from axis.host.config import Settings
from axis.store.base import (
    Agency,
    AgencyCode,
    Delivery,
    Hop,
    NewPackage,
    PackageRecord,
    Store,
)
from axis.usecases.directory import Directory
from axis.usecases.routing import Routed, Router

PACKAGE_ID_RE = re.compile(r"^[0-9a-f]{32}$")
# Packages up to this size are verified on the event loop: that takes about a millisecond,
# less than handing the work to a thread and back costs (the work holds the GIL either way).
# Bigger ones go to a thread, so that one large package does not stall every other request;
# what makes a small one expensive (namespace declarations for C14N) the parser bounds.
INLINE_VERIFY_BYTES = 64 * 1024


@dataclass(frozen=True)
class Taken:
    """One package of an inbox read that carries the packages (:meth:`Hub.take`): its record,
    the size of its body, and the body, or None when the read's byte budget was spent before
    it (the recipient fetches it on its own)."""

    record: PackageRecord
    size: int
    body: bytes | None


@dataclass(frozen=True)
class Accepted:
    """The answer to ``POST /v1/packages``: the body and whether it was new (201) or not (200)."""

    answer: dict[str, Any]
    created: bool


class Hub:
    """The hub's behaviour over any :class:`~axis.store.base.Store`."""

    def __init__(
        self,
        store: Store,
        verifier: Verifier,
        receipts: ReceiptSigner,
        settings: Settings,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock``: the time the hub records things at (a simulation's, in a time-warped
        replay: :mod:`axis.core.clock`); certificates are checked against the real time."""
        self.store = store
        # The directory's answers between two of its changes: asked a dozen times a document.
        self.cached_directory = Directory(store)
        self.router = Router(store, settings.limits, self.cached_directory)
        self.receipts = receipts
        self.settings = settings
        self.clock = clock
        self.monotonic = monotonic
        # One token bucket per agency, so that one noisy agency cannot starve the others.
        self.limiter = RateLimiter(
            RateLimit(settings.limits.rate_per_s, settings.limits.rate_burst)
        )
        # Parsed registered certificates by fingerprint: a certificate never changes under
        # its fingerprint, so the cache needs no invalidation (revocation is checked per request).
        self._certs: dict[str, x509.Certificate] = {}
        # Bounds the bodies held in memory at once: a package is read, parsed and verified
        # only while it holds a slot (a 50 MiB package costs several times that to verify).
        self.intake = asyncio.Semaphore(settings.limits.max_concurrent_uploads)
        # … and so do the inbox reads that carry packages (each holds up to inbox_bytes, and
        # its answer a few copies of that while it is encoded).
        self.carrying = asyncio.Semaphore(settings.limits.max_concurrent_uploads)
        # Set when a committed package has pushes due, so the delivery worker wakes at once.
        self.push_due = asyncio.Event()
        self._uploading: dict[str, int] = {}  # upload slots each agency holds now

        self.intake_policy = intake_policy(verifier, settings)

    @contextlib.asynccontextmanager
    async def upload_slot(self, agency: Agency) -> AsyncIterator[None]:
        """One of the ``max_concurrent_uploads`` slots, of which one agency holds at most
        ``uploads_per_agency`` at once: one agency's slow bodies cannot take them all.

        Raises RateLimited: the agency holds its share already."""
        share = max(1, self.settings.limits.uploads_per_agency)
        held = self._uploading.get(agency.organ_id, 0)
        if held >= share:
            raise RateLimited(
                f"agency {agency.organ_id} is sending {held} packages at once already, its share"
                " of the hub's upload slots (uploads_per_agency); send them one after another",
                retry_after_s=1.0,
            )
        self._uploading[agency.organ_id] = held + 1
        try:
            async with self.intake:
                yield
        finally:
            left = self._uploading[agency.organ_id] - 1
            if left:
                self._uploading[agency.organ_id] = left
            else:
                del self._uploading[agency.organ_id]

    # -- identity ---------------------------------------------------------------------------

    async def authenticate(self, peer_der: bytes | None) -> Agency:
        """The active agency whose registered certificate opened the TLS connection, within
        its request rate.

        Raises:
            UntrustedCertificate: no client certificate, or one no agency registered.
            NotAllowed: the agency was revoked.
            RateLimited: the agency is over ``rate_per_s`` (after a burst of ``rate_burst``).
        """
        if not peer_der:
            raise UntrustedCertificate("a client certificate is required on the node API")
        # Once a request, first: a revocation committed anywhere before it is seen.
        await self.cached_directory.refresh()
        agency = await self.cached_directory.agency_by_fingerprint(
            hashlib.sha256(peer_der).hexdigest()
        )
        if agency is None:
            raise UntrustedCertificate("this client certificate is not registered to any agency")
        if not agency.active:
            raise NotAllowed(f"agency {agency.organ_id} has been revoked")
        wait = self.limiter.take(agency.organ_id, self.monotonic())
        if wait > 0:
            # The detail says the wait Retry-After says: whole seconds. A bucket that refills
            # in 20 ms said "try again in 0.0 s" while the header said 1.
            raise RateLimited(
                f"agency {agency.organ_id} is over its limit of {self.settings.limits.rate_per_s:g}"
                f" requests a second; try again in {retry_after_seconds(wait)} s",
                retry_after_s=wait,
            )
        return agency

    # -- sending ----------------------------------------------------------------------------

    async def accept(self, agency: Agency, body: bytes) -> Accepted:
        """Verify, route and commit one package from ``agency``.

        Raises:
            InputError: any of the problems of SPEC §5; nothing is stored then.
        """
        # The same bytes again are the same package, answered with the first answer whatever
        # changed since (a certificate replaced, the document recalled). A big package is
        # looked up by its bytes before paying to verify it again. A small one is not: nearly
        # every package is sent once, and the look cost a query a package on the request path
        # (five a document). Its resend is answered by the store's unique key as it commits
        # (Hub.admit), or, if it no longer passes, by the same look made after the refusal.
        sha256 = hashlib.sha256(body).hexdigest()
        small = len(body) <= INLINE_VERIFY_BYTES
        if not small:
            earlier = await self.store.find_by_sha256(agency.organ_id, sha256)
            if earlier is not None:
                return Accepted(json.loads(earlier.answer), created=False)
        codes = await self.codes(agency)
        try:
            if small:
                package = self._verify(agency, codes, body)
            else:
                package = await self._verify_off_loop(agency, codes, body)
            return await self.admit(agency, codes, package, body, sha256=sha256, resends=True)
        except InputError:
            earlier = await self.store.find_by_sha256(agency.organ_id, sha256) if small else None
            if earlier is None:
                raise
            return Accepted(json.loads(earlier.answer), created=False)

    async def _verify_off_loop(
        self, agency: Agency, codes: dict[str, str | None], body: bytes
    ) -> Package:
        """:meth:`_verify` on a thread, within ``verify_timeout_s``. libxmlsec cannot be
        interrupted: past the deadline the request is refused and the thread finishes in the
        background (the parser's bounds keep that short)."""
        limit = self.settings.limits.verify_timeout_s
        try:
            async with asyncio.timeout(limit):
                return await asyncio.to_thread(self._verify, agency, codes, body)
        except TimeoutError as exc:
            raise InvalidSignature(
                f"verifying the package took longer than {limit:g} s: it is too costly to check"
            ) from exc

    async def codes(self, agency: Agency) -> dict[str, str | None]:
        """Every code ``agency`` holds, each with its successor once closed (as of the
        request's :meth:`Directory.refresh`)."""
        return {
            c.code: c.successor for c in await self.cached_directory.agency_codes(agency.organ_id)
        }

    async def admit(
        self,
        agency: Agency,
        codes: dict[str, str | None],
        package: Package,
        body: bytes,
        notes: str | None = None,
        tallies: tuple[tuple[str, str], ...] = (),
        sha256: str | None = None,
        resends: bool = False,
    ) -> Accepted:
        """Route and commit a package already read from ``body`` (and verified, or vouched
        for by the face that read it, which says how in ``notes``), sent by ``agency``.
        Every face comes through here: the rules of SPEC §5 are applied once. ``sha256``:
        the body's, when the caller has it already (a big body is hashed once);
        ``resends``: the caller answers a resend of the same bytes that this call refuses
        (:meth:`accept`), so the package is not looked up before it is stored: the store's
        unique key finds a resend as it commits, and answers it with the first record, or
        refuses other bytes (DuplicateConflict).

        Raises:
            InputError: any routing problem of SPEC §5, or a resend with other bytes.
        """
        sha256 = sha256 or hashlib.sha256(body).hexdigest()
        key = _idempotency_key(package, sha256)
        # Nearly every package is sent once. A resend meets the unique key in the store, which
        # answers it with the first record or refuses other bytes (insert_package), as it does
        # a resend racing this: a look first cost a query a document (a round trip on
        # PostgreSQL). Where a resend would no longer route (a code closed since), accept()
        # answers the same bytes from the store; other bytes get the routing's refusal.
        earlier = None if resends else await self.store.find_by_key(agency.organ_id, key)
        if earlier is not None:
            if earlier.sha256 != sha256:
                raise DuplicateConflict(
                    f"{earlier.document_id!r} was already sent with other content"
                    f" (package {earlier.id})"
                )
            return Accepted(json.loads(earlier.answer), created=False)
        routed = await self.router.route(agency, codes, package)
        return await self._commit(agency, package, routed, key, body, sha256, notes, tallies)

    def _verify(self, agency: Agency, codes: dict[str, str | None], body: bytes) -> Package:
        """The CPU-bound part: the one intake path (parse, validate, verify, read), signed by
        the agency of the TLS connection with its registered certificate, From naming one of
        its open ``codes``."""
        signer = intake.registered_signer(agency.organ_id, self._certificate(agency), codes)
        return intake.read_package(body, self.intake_policy, signer, utc_now())

    def _certificate(self, agency: Agency) -> x509.Certificate:
        """The agency's registered certificate, parsed once per fingerprint."""
        cert = self._certs.get(agency.fingerprint)
        if cert is None:
            cert = self._certs[agency.fingerprint] = pki.load_cert(agency.cert_pem)
        return cert

    async def _commit(
        self,
        agency: Agency,
        package: Package,
        routed: Routed,
        key: str,
        body: bytes,
        sha256: str,
        notes: str | None = None,
        tallies: tuple[tuple[str, str], ...] = (),
    ) -> Accepted:
        # Time-ordered (on the real clock, not a simulated one): see axis.core.ids.
        package_id = uuid7_hex(time.time_ns() // 1_000_000, os.urandom(10))
        received_at = self.clock()
        # A receipt is small: signing it inline is cheaper than a thread hop.
        receipt = self.receipts.sign(
            Receipt(
                package_id,
                sha256,
                agency.organ_id,
                routed.recipients,
                received_at,
                self.settings.hub.organ_id,
            )
        )
        answer = {
            "id": package_id,
            "document_id": routed.document_id,
            "kind": package.kind.value,
            "sha256": sha256,
            "received_at": received_at.isoformat(timespec="milliseconds"),
            "recipients": list(routed.recipients),
            "receipt": receipt,
        }
        if notes:
            answer["notes"] = notes
        record, created = await self.store.insert_package(
            NewPackage(
                id=package_id,
                kind=package.kind,
                sender=agency.organ_id,
                document_id=routed.document_id,
                idempotency_key=key,
                business_type=_business_type(package),
                sha256=sha256,
                subject=routed.subject,
                received_at=received_at,
                body=body,
                recipients=routed.recipients,
                answer=json.dumps(answer, ensure_ascii=False),
                status_update=routed.status_update,
                push_recipients=routed.push_recipients,
                recall_of=routed.recall_of,
                received_by=self.settings.hub.organ_id,
                notes=notes,
                tallies=tallies,
            )
        )
        if created and routed.push_recipients:
            self.push_due.set()
        return Accepted(json.loads(record.answer), created)

    # -- receiving --------------------------------------------------------------------------

    async def inbox(
        self, agency: Agency, after: int, limit: int
    ) -> tuple[list[PackageRecord], int | None]:
        """The agency's pending packages after cursor ``after``, and the next cursor."""
        limit = self._page(limit)
        items = await self.store.inbox(agency.organ_id, after, limit)
        return items, (items[-1].seq if len(items) == limit else None)

    async def take(
        self, agency: Agency, after: int, limit: int, max_bytes: int
    ) -> tuple[list[Taken], int | None]:
        """:meth:`inbox` carrying the packages themselves: oldest first, as many as fit in
        ``max_bytes`` (at most ``inbox_bytes``); the rest of the page is listed without its
        body. Each package carried is fetched, as ``GET /v1/packages/{id}`` fetches it, all in
        one write; one recalled or acknowledged since it was listed is left out. A carried
        package stays in the inbox until it is acknowledged, so a recipient that loses the
        answer gets it again on its next read."""
        limit = self._page(limit)
        budget = max(0, min(max_bytes, self.settings.limits.inbox_bytes))
        listed = await self.store.inbox_sized(agency.organ_id, after, limit)
        carried: list[str] = []
        spent = 0
        for record, size in listed:
            if spent + size > budget:
                break  # in order: a later small package never jumps a large one
            carried.append(record.id)
            spent += size
        moved = await self.store.apply_events(
            carried, agency.organ_id, DeliveryEvent.FETCHED, self.clock()
        )
        fetched = [
            pid
            for pid, delivery in zip(carried, moved, strict=True)
            if isinstance(delivery, Delivery) and delivery.state in lifecycle.PENDING
        ]
        bodies = await self.store.package_bodies(fetched)
        gone = set(carried) - set(fetched)
        items = [
            Taken(record, size, bodies.get(record.id))
            for record, size in listed
            if record.id not in gone
        ]
        return items, (listed[-1][0].seq if len(listed) == limit else None)

    def _page(self, limit: int) -> int:
        """A page size the hub serves: 1 to ``inbox_page``."""
        return max(1, min(limit, self.settings.limits.inbox_page))

    async def ack_many(
        self, agency: Agency, package_ids: list[str]
    ) -> tuple[list[str], list[tuple[str, AxisError]]]:
        """Acknowledge several packages in one write; repeating any of it is harmless. The
        ids acknowledged (a recalled package's ack is the harmless no-op :meth:`ack` makes
        it), and each one refused with why (:meth:`ack`'s refusals: an unknown id, or a
        package not addressed to the agency); the others are acknowledged all the same."""
        ids = list(dict.fromkeys(package_ids))
        valid = [pid for pid in ids if PACKAGE_ID_RE.match(pid)]
        moved = await self.store.apply_events(
            valid, agency.organ_id, DeliveryEvent.ACKED, self.clock()
        )
        outcome = dict(zip(valid, moved, strict=True))
        acknowledged: list[str] = []
        refused: list[tuple[str, AxisError]] = []
        for pid in ids:
            delivery = outcome.get(pid)
            if isinstance(delivery, Delivery):
                acknowledged.append(pid)
            elif isinstance(delivery, InvalidTransition):
                refused.append(
                    (pid, NotAllowed(f"package {pid} is {delivery.state} for {agency.organ_id}"))
                )
            elif pid in outcome and await self.store.get_record(pid) is not None:
                refused.append(
                    (pid, NotAllowed(f"package {pid} is not addressed to {agency.organ_id}"))
                )
            else:
                refused.append((pid, UnknownDocument(f"no package {pid[:64]!r}")))
        return acknowledged, refused

    async def fetch(self, agency: Agency, package_id: str) -> bytes:
        """The exact stored bytes, for the sender or a recipient; a recipient's fetch marks
        its delivery ``delivered``.

        Raises:
            UnknownDocument, NotAllowed.
        """
        return (await self.fetch_record(agency, package_id))[1]

    async def fetch_record(self, agency: Agency, package_id: str) -> tuple[PackageRecord, bytes]:
        """:meth:`fetch`, with the package's record (its notes: how a face took it).

        Raises:
            UnknownDocument, NotAllowed.
        """
        found = await self.store.get_package(_checked_id(package_id))
        if found is None:
            raise UnknownDocument(f"no package {package_id!r}")
        record, body = found
        # A recipient first (a package may be addressed to its own sender).
        if await self._apply(agency, record, DeliveryEvent.FETCHED) is None:
            if record.sender != agency.organ_id:
                raise NotAllowed(f"package {package_id} is not addressed to {agency.organ_id}")
        return record, body

    async def ack(self, agency: Agency, package_id: str) -> Delivery:
        """Confirm receipt; repeating it is harmless.

        Raises:
            UnknownDocument, NotAllowed.
        """
        record = await self._record(package_id)
        delivery = await self._apply(agency, record, DeliveryEvent.ACKED)
        if delivery is None:
            raise NotAllowed(f"package {package_id} is not addressed to {agency.organ_id}")
        return delivery

    async def deliveries(self, agency: Agency, package_id: str) -> list[Delivery]:
        """Each recipient's state, for the sender only.

        Raises:
            UnknownDocument, NotAllowed.
        """
        return (await self.tracked(agency, package_id))[1]

    async def tracked(
        self, agency: Agency, package_id: str
    ) -> tuple[PackageRecord, list[Delivery]]:
        """The package and each recipient's state, for the sender only.

        Raises:
            UnknownDocument, NotAllowed.
        """
        record = await self._record(package_id)
        if record.sender != agency.organ_id:
            raise NotAllowed("only the sender may track a package's deliveries")
        return record, await self.store.deliveries(package_id)

    async def _apply(
        self, agency: Agency, record: PackageRecord, event: DeliveryEvent
    ) -> Delivery | None:
        """Move the agency's delivery of ``record``; None if it is not a recipient."""
        try:
            return await self.store.apply_event(record.id, agency.organ_id, event, self.clock())
        except InvalidTransition as exc:
            raise NotAllowed(f"package {record.id} is {exc.state} for {agency.organ_id}") from exc

    async def record(self, package_id: str) -> PackageRecord:
        """The package ``package_id`` (without its body).

        Raises UnknownDocument: no such package, or no id as the hub makes them."""
        return await self._record(package_id)

    async def _record(self, package_id: str) -> PackageRecord:
        record = await self.store.get_record(_checked_id(package_id))
        if record is None:
            raise UnknownDocument(f"no package {package_id!r}")
        return record

    async def trace(self, agency: Agency, package_id: str) -> list[Hop]:
        """The hub's own trace of a package (each hop and when), for its sender.

        Raises:
            UnknownDocument, NotAllowed.
        """
        record = await self._record(package_id)
        if record.sender != agency.organ_id:
            raise NotAllowed("only the sender may see a package's trace")
        return await self.store.trace(package_id)

    async def directory(self) -> list[dict[str, Any]]:
        """Every registered agency: its OrganId, name, state, the codes it answers to (its
        OrganId among them) and those of its codes that are closed, each with its
        successor."""
        held: dict[str | None, list[AgencyCode]] = {}
        for code in await self.store.agency_codes():
            held.setdefault(code.organ_id, []).append(code)
        return [
            {
                "organ_id": a.organ_id,
                "name": a.name,
                "active": a.active,
                "codes": [c.code for c in held.get(a.organ_id, []) if not c.closed],
                "closed": {c.code: c.successor for c in held.get(a.organ_id, []) if c.closed},
            }
            for a in await self.store.list_agencies()
        ]


def intake_policy(verifier: Verifier, settings: Settings) -> IntakePolicy:
    """What the hub asks of a package before reading it: ``settings``' body, depth and
    attachment limits, and ``verifier``'s signature policy and trust."""
    limits = settings.limits
    return IntakePolicy(
        verifier,
        ParseLimits(max_bytes=limits.max_body_bytes, max_depth=limits.max_xml_depth),
        max_attachments=limits.max_attachments,
    )


def _checked_id(package_id: str) -> str:
    """A package id as the hub makes them (32 hex digits); anything else is unknown."""
    if not PACKAGE_ID_RE.match(package_id):
        raise UnknownDocument(f"no package {package_id[:64]!r}")
    return package_id


def _bytes_key(sha256: str) -> str:
    """The idempotency key of a package keyed by its bytes alone (a status)."""
    return f"status:{sha256}"


def _idempotency_key(package: Package, sha256: str) -> str:
    """(sender, DocumentId, BussinessDocType) for an edoc; a status is keyed by its bytes.

    An update is keyed by what it says too: a document may be updated more than once, each
    time keeping its DocumentId (as the field does), while the same update signed again (a
    new trace time) is still the same package, and a conflict if its bytes differ."""
    if not isinstance(package, Edoc):
        return _bytes_key(sha256)
    key = f"edoc:{int(package.business.doc_type)}:{package.document_id}"
    if package.business.doc_type is BusinessDocType.UPDATE:
        key += ":" + _digest(dataclasses.replace(package, traces=()))
    return key


def _digest(value: object) -> str:
    """SHA-256 of a record's content, every field in order, an attachment's bytes by their
    own SHA-256 (a record holds text, numbers, dates, bytes, tuples and records)."""
    digest = hashlib.sha256()

    def feed(item: object) -> None:
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            for f in dataclasses.fields(item):
                feed(getattr(item, f.name))
        elif isinstance(item, tuple):
            digest.update(b"(%d" % len(item))
            for member in item:
                feed(member)
        elif isinstance(item, bytes):
            digest.update(b"b" + hashlib.sha256(item).digest())
        else:
            text = repr(item).encode("utf-8")
            digest.update(b"%d:" % len(text) + text)

    feed(value)
    return digest.hexdigest()


def _business_type(package: Package) -> BusinessDocType:
    return package.business.doc_type if isinstance(package, Edoc) else BusinessDocType.NEW
