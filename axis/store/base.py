"""What the hub keeps, and the protocol every store implements.

The records are plain frozen dataclasses; the protocol's methods are the only way in or out.
A store guarantees that :meth:`Store.insert_package` commits the package, all its deliveries
and any status update in one transaction, and that it is durable when the call returns.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from axis.core.edxml_model import BusinessDocType, PackageKind
from axis.core.lifecycle import DeliveryEvent, DeliveryState, InvalidTransition
from axis.core.logchain import Checkpoint, LogEntry
from axis.core.routing import StatusUpdate, Stored

__all__ = [
    "Agency", "AgencyCode", "Delivery", "Hop", "NewPackage", "PackageRecord", "PushJob",
    "StatusUpdate", "Store",
]  # fmt: skip


@dataclass(frozen=True)
class Agency:
    """A registered agency: who it is, the certificate it signs and connects with."""

    organ_id: str
    name: str
    cert_pem: bytes
    fingerprint: str
    registered_at: datetime
    active: bool = True
    endpoint: str | None = None
    system_id: str | None = None  # the national axis's face: the system speaking for it

    @property
    def has_certificate(self) -> bool:
        """False for an agency a system registered (registerAgency): it signs nothing the
        hub could check, and reaches the hub only through its system."""
        return bool(self.cert_pem)


@dataclass(frozen=True)
class System:
    """An integration centre's system on the national axis's face: its id (the SDK's
    systemId), name, secret sealed under the data folder's key, and whether it may call."""

    system_id: str
    name: str
    sealed_secret: bytes
    added_at: datetime
    active: bool = True


@dataclass(frozen=True)
class AgencyCode:
    """One code of the directory. An agency holds its OrganId and may hold more (the 2016
    form and the Decision 20/2020 identifier of one body, as the national directory's
    ``code``, ``oldCode`` and ``code102``); a package naming any of them reaches it. A code
    closes when bodies merge, naming its successor; it is never given out again."""

    code: str
    organ_id: str | None  # the agency holding it; None: a closed code no agency here held
    added_at: datetime
    successor: str | None = None  # set once closed
    closed_at: datetime | None = None

    @property
    def closed(self) -> bool:
        return self.successor is not None


@dataclass(frozen=True)
class Hop:
    """One entry of the hub's own trace of a package, kept beside it (never in the signed
    bytes): who (an OrganId, the hub's own for ``received``), what, when."""

    organ_id: str
    event: str
    at: datetime
    detail: str | None = None


@dataclass(frozen=True)
class PushJob:
    """A claimed push: one delivery leased to one worker until ``lease_until``."""

    package_id: str
    recipient: str
    attempts: int
    received_at: datetime
    lease_until: datetime


@dataclass(frozen=True)
class NewPackage:
    """A verified package, ready to be committed with its deliveries."""

    id: str
    kind: PackageKind
    sender: str
    document_id: str
    idempotency_key: str
    business_type: BusinessDocType
    sha256: str
    subject: str
    received_at: datetime
    body: bytes
    recipients: tuple[str, ...]
    answer: str  # the JSON of the 201 answer, returned again on a resend
    status_update: StatusUpdate | None = None
    push_recipients: tuple[str, ...] = ()  # recipients with an endpoint: push due at once
    recall_of: tuple[str, ...] = ()  # a recall: these packages' unfetched deliveries go back
    notes: str | None = None  # the national axis's face: unsigned, deviations
    tallies: tuple[tuple[str, str], ...] = ()  # more counters to bump: (metric, key)
    received_by: str = ""  # the hub's OrganId, for the first hop of the trace


class ItemFilter(StrEnum):
    """Which received deliveries a list selects, by state and transport mark."""

    PENDING = "pending"  # not yet acknowledged nor taken back
    INITIAL = "initial"  # queued, never fetched nor marked
    PROCESSING = "processing"  # fetched, or marked (not fail), not yet acknowledged
    FAIL = "fail"  # a push that gave up, or marked fail


@dataclass(frozen=True)
class ItemQuery:
    """A page of a received list: the filter, the time received (``since``/``until``,
    inclusive), at most ``limit`` items after the first ``offset``."""

    filter: ItemFilter = ItemFilter.PENDING
    since: datetime | None = None
    until: datetime | None = None  # inclusive: to the end of its second
    limit: int = 100
    offset: int = 0
    fail_mark: str = "fail"  # the transport mark that says a delivery failed


@dataclass(frozen=True)
class PackageRecord:
    """A stored package without its body."""

    id: str
    seq: int
    kind: PackageKind
    sender: str
    document_id: str
    business_type: BusinessDocType
    sha256: str
    subject: str
    received_at: datetime
    answer: str
    notes: str | None = None  # what it was taken with on the national axis's face


@dataclass(frozen=True)
class Delivery:
    package_id: str
    recipient: str
    state: DeliveryState
    status_code: str | None
    updated_at: datetime
    attempts: int = 0  # failed pushes so far
    last_error: str | None = None  # why the last push failed
    mark: str | None = None  # the last transport mark of the national axis's updateStatus

    def as_json(self) -> dict[str, object]:
        """The delivery as the APIs show it (SPEC §5, plus push attempts and the last error)."""
        return {
            "package_id": self.package_id,
            "to": self.recipient,
            "state": self.state.value,
            "status_code": self.status_code,
            "updated_at": self.updated_at.isoformat(timespec="milliseconds"),
            "attempts": self.attempts,
            "last_error": self.last_error,
            "mark": self.mark,
        }


class Store(Protocol):
    """Persistence for agencies, packages and deliveries.

    Methods raise :class:`axis.errors.DuplicateConflict` where noted and
    :class:`axis.errors.Unavailable` when the database cannot be reached.

    A change is in the log and the statistics for every read that starts after its call
    returned (:meth:`counter_rows`, :meth:`counter_total`, :meth:`log_entries`,
    :meth:`log_tail`, :meth:`log_head`, :meth:`received_entries`), whichever process reads;
    on PostgreSQL, where entries are chained just after their commit, such a read first waits
    for that (:meth:`unchained_entries` is the lag, read as it is).
    """

    # True when only processes on this host, under the data folder's serve lock, use the
    # store (SQLite): a starting hub may then take every push lease as a dead one's.
    single_node: bool

    async def open(self) -> None:
        """Connect, and apply the schema migrations that are missing."""

    async def close(self) -> None:
        """Release every connection."""

    async def ping(self) -> None:
        """Raises Unavailable unless the store can take writes now."""

    def observe(self, callback: Callable[[LogEntry], None]) -> None:
        """Call ``callback`` with every log entry once its transaction has committed and
        it is chained (metrics follow the log this way, never a change that was rolled back;
        on PostgreSQL a moment after the change's call returned, but for a change to the
        directory: before)."""

    async def add_agency(self, agency: Agency, aliases: Sequence[str] = ()) -> None:
        """Register an agency holding its OrganId and ``aliases`` as its codes.

        Raises DuplicateConflict if the certificate or any of the codes is taken (held, or
        closed)."""

    async def get_agency(self, organ_id: str) -> Agency | None:
        """The agency with this OrganId (the code it is filed under), active or not."""

    async def add_code(self, organ_id: str, code: str) -> bool:
        """Let the agency ``organ_id`` hold ``code`` too; False if there is no such agency.
        Adding a code it already holds open changes nothing.

        Raises DuplicateConflict if another agency holds it, or it is closed."""

    async def close_code(self, code: str, successor: str) -> AgencyCode:
        """Close ``code`` (held by an agency or not), naming its successor; closing it again
        with the same successor changes nothing.

        Raises DuplicateConflict if it is already closed with another successor."""

    async def find_code(self, code: str) -> AgencyCode | None:
        """The directory's record of ``code``; None if nobody ever held or closed it."""

    async def code_holder(self, code: str) -> tuple[AgencyCode, Agency | None] | None:
        """:meth:`find_code` and the agency holding the code (None: a closed code that no
        agency here held), in one lookup."""

    async def agency_codes(self, organ_id: str | None = None) -> list[AgencyCode]:
        """The codes one agency holds (its OrganId among them), or with None every code of
        the directory, by code."""

    async def add_system(self, system: System) -> None:
        """Add a system of the national axis's face.

        Raises DuplicateConflict if the id is taken."""

    async def get_system(self, system_id: str) -> System | None:
        """The system with this id, active or not."""

    async def list_systems(self) -> list[System]:
        """Every system, by id."""

    async def set_system_active(self, system_id: str, active: bool) -> bool:
        """Revoke (or reinstate) a system; False if there is none."""

    async def system_agencies(self, system_id: str) -> list[Agency]:
        """The agencies a system speaks for, active or not, by OrganId."""

    async def received_items(
        self, system_id: str, kind: PackageKind, query: ItemQuery
    ) -> list[tuple[PackageRecord, list[Delivery]]]:
        """A page of the packages of ``kind`` to the agencies of ``system_id`` that
        ``query`` selects, oldest first, each once with its deliveries to those agencies."""

    async def system_deliveries(self, package_id: str, system_id: str) -> list[Delivery]:
        """A package's deliveries to the agencies of ``system_id``."""

    async def count_received(self, system_id: str, kind: PackageKind) -> int:
        """How many packages of ``kind`` wait for any agency of ``system_id`` (pending)."""

    async def mark_delivery(self, package_id: str, recipient: str, mark: str) -> bool:
        """Record a transport mark on a delivery; False if there is no such delivery."""

    async def agency_by_fingerprint(self, fingerprint: str) -> Agency | None:
        """The agency whose registered certificate has this SHA-256 fingerprint."""

    async def directory_changes(self) -> int:
        """How many changes the directory (agencies, codes, systems) has had: a number that
        grows with every committed change, whichever process made it."""

    async def list_agencies(self) -> list[Agency]:
        """Every registered agency, by OrganId."""

    async def set_agency_active(self, organ_id: str, active: bool) -> bool:
        """Activate or revoke an agency; False if there is no such agency."""

    async def find_by_sha256(self, sender: str, sha256: str) -> PackageRecord | None:
        """The sender's package with exactly these bytes (by their SHA-256), if any."""

    async def find_by_key(self, sender: str, idempotency_key: str) -> PackageRecord | None:
        """The package a sender already committed under this idempotency key."""

    async def find_document(self, sender: str, document_id: str) -> PackageRecord | None:
        """The sender's original edoc (BussinessDocType 0) with this DocumentId."""

    async def stored_edocs(
        self, sender: str, document_id: str, recipients: Collection[str] | None = None
    ) -> tuple[Stored, ...]:
        """Every edoc of the sender with this DocumentId (the original, its recalls, updates
        and replacements), newest first, as routing reads them: each one's id and
        BussinessDocType, its recipients' last status codes and those a recall took it back
        from, in one read; of ``recipients`` only, if given (every edoc still listed)."""

    async def insert_package(self, package: NewPackage) -> tuple[PackageRecord, bool]:
        """Commit a package, its deliveries and its status update in one transaction.

        Returns the stored record and True, or, when the same sender already committed the same
        idempotency key with the same bytes, the first record and False.

        Raises:
            DuplicateConflict: the key was committed before with other bytes.
        """

    async def get_record(self, package_id: str) -> PackageRecord | None:
        """A package's record, without reading its body."""

    async def get_package(self, package_id: str) -> tuple[PackageRecord, bytes] | None:
        """A package and its exact stored bytes."""

    async def deliveries(self, package_id: str) -> list[Delivery]:
        """The deliveries of one package, by recipient."""

    async def inbox(self, recipient: str, after: int, limit: int) -> list[PackageRecord]:
        """Packages still pending for ``recipient`` with ``seq > after``, oldest first."""

    async def inbox_sized(
        self, recipient: str, after: int, limit: int
    ) -> list[tuple[PackageRecord, int]]:
        """:meth:`inbox`, each package with the size of its body in bytes."""

    async def apply_event(
        self, package_id: str, recipient: str, event: DeliveryEvent, at: datetime
    ) -> Delivery | None:
        """Move one delivery by the lifecycle table; None if there is no such delivery.

        Raises:
            axis.core.lifecycle.InvalidTransition: the move is not allowed from its state.
        """

    async def apply_events(
        self, package_ids: Sequence[str], recipient: str, event: DeliveryEvent, at: datetime
    ) -> list[Delivery | InvalidTransition | None]:
        """:meth:`apply_event` on several of one recipient's deliveries in one transaction;
        for each, in order, what :meth:`apply_event` would return or raise (a delivery the
        table cannot move is left as it is; the others move)."""

    async def trace(self, package_id: str) -> list[Hop]:
        """The hub's trace of a package, oldest first (entries not yet chained included)."""

    async def deliveries_in(self, state: DeliveryState, limit: int) -> list[Delivery]:
        """Deliveries in one state, most recently changed first (for operators)."""

    async def oldest_pending(self, limit: int) -> list[Delivery]:
        """Queued or delivered (not yet acknowledged) deliveries, oldest package first."""

    async def agency_counts(self) -> tuple[int, int]:
        """(registered, active) agencies."""

    async def counter_rows(
        self, day_from: str | None, day_to: str | None
    ) -> list[tuple[str, str, str, int]]:
        """The statistics counters (day, metric, key, n) of packages received on days
        ``day_from``..``day_to`` (YYYY-MM-DD, inclusive; None: unbounded)."""

    async def counter_total(self, metric: str) -> int:
        """One counter summed over every day and key (e.g. the pending deliveries)."""

    async def log_entries(self, after: int, limit: int) -> list[LogEntry]:
        """Log entries with ``seq > after``, in order."""

    async def log_tail(self, limit: int) -> list[LogEntry]:
        """The newest ``limit`` log entries, in order."""

    async def log_head(self) -> tuple[int, str | None]:
        """The last entry's seq and hash ((0, None) for an empty log)."""

    def snapshot(self) -> AbstractAsyncContextManager[None]:
        """Reads inside the block see one consistent state of the store (for verification
        while the hub runs)."""

    async def received_entries(self, after: int, upto: int, limit: int) -> list[LogEntry]:
        """ "received" log entries with ``after < seq <= upto``, in order."""

    async def state_entries(self, package_ids: list[str], upto: int) -> list[LogEntry]:
        """The delivery and status entries of these packages with ``seq <= upto``, in order,
        then those not yet chained (seq 0; see :meth:`unchained_entries`)."""

    async def package_sizes(self, package_ids: list[str]) -> dict[str, int]:
        """The stored size of each of these packages that exists."""

    async def package_bodies(self, package_ids: list[str]) -> dict[str, bytes]:
        """The stored bytes of each of these packages that exists."""

    async def deliveries_of(self, package_ids: list[str]) -> list[Delivery]:
        """Every delivery of these packages."""

    async def unlogged_package(self) -> str | None:
        """A stored package that no "received" entry records, chained or not, if there is
        one."""

    async def agency_entries(self) -> list[LogEntry]:
        """Every entry about the directory (agency-registered, agency-revoked,
        agency-code-added, agency-code-closed), in order, those not yet chained last."""

    async def unchained_entries(self) -> int:
        """How many committed log entries wait to be chained: the chainer's lag (always 0
        on SQLite, whose one writer chains each entry where it is written)."""

    async def checkpoints(self) -> list[Checkpoint]:
        """Every signed checkpoint of the log, in order."""

    async def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Keep a signed checkpoint (one per chain length)."""

    async def delivery(self, package_id: str, recipient: str) -> Delivery | None:
        """One delivery."""

    async def claim_pushes(
        self,
        owner: str,
        now: datetime,
        lease_s: float,
        limit: int,
        per_recipient: int = 1_000_000,
    ) -> list[PushJob]:
        """Lease to ``owner`` until ``now + lease_s`` up to ``limit`` queued deliveries whose
        push is due and that no live lease holds (an expired lease is taken over), oldest due
        first. No delivery is leased to two owners, and no recipient ends up with more than
        ``per_recipient`` live leases: the leases it has already count, whoever holds them,
        ``owner`` included, so a dead endpoint holds that many pushes at most across every
        worker."""

    async def release_leases(self, owner: str) -> None:
        """Give back every lease ``owner`` holds (a worker stopping cleanly)."""

    async def release_all_leases(self) -> int:
        """Give back every lease, whoever holds it, and say how many there were.

        Only for a hub that knows it is the store's one pusher (it holds the data folder's
        serve lock): any lease it finds on starting was left by a predecessor that died, and
        its pushes are resumed now instead of after the lease runs out."""

    async def push_delivered(self, job: PushJob, at: datetime) -> Delivery | None:
        """The push got a 2xx: the delivery is ``delivered`` and its lease released. (A
        delivery that leaves ``queued`` any other way loses its lease and next try too.)"""

    async def push_failed(
        self, job: PushJob, owner: str, at: datetime, error: str, retry_at: datetime | None
    ) -> None:
        """Count a failed push; try again at ``retry_at``, or give up (``failed``) when None.
        Does nothing if ``owner`` no longer holds the lease."""
