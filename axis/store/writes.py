"""The write side of both stores, written once: every write the hub makes, as a *step*.

Theory of operation: a step is a generator. It yields what it needs from the database and is
sent each answer back:

- :class:`Query`: the rows of a statement (a list of tuples);
- :class:`Command`: how many rows a statement changed;
- :class:`CommandMany`: one statement for many rows (no answer);
- :class:`Write`: a statement whose answer the step does not need, which a driver may hold
  and run with the writes after it (no answer);
- :class:`InsertMany`: many rows into one table (no answer): SQLite inserts them one by one,
  PostgreSQL in one statement, a column an array (``unnest``);
- :class:`InsertNumbered`: a new row that the database numbers and the rows that take its
  number (a package and its deliveries), answered with the number: a step's last operation;
- :data:`SERIALIZE`: yielded first by every change to the directory (agencies, their codes,
  systems), which checks what is there before it changes it (and counts itself in
  ``directory_changes``, which tells a hub process that its directory in memory is stale).
  On PostgreSQL the driver takes a transaction-scoped advisory lock, so two such changes run
  one after the other; SQLite's one writer thread serializes every write already. Packages
  and deliveries need no such lock: their rows are locked one by one (``FOR UPDATE``) and
  their keys are unique;
- :class:`Append`: a log entry, as a :class:`~axis.core.logchain.Draft`. Where it takes its
  place in the chain is the driver's business: SQLite's one writer links the entries of a
  whole group of transactions to the head just before it commits them
  (:func:`axis.store.sqlite._seal`); PostgreSQL's workers commit them unchained, and a
  chainer links what has committed, in one order, just after (:mod:`axis.store.postgres`).
  Either way the entry commits or vanishes with its change, and the store's observers hear
  of it once it is chained;
- :class:`Counted`: increments of the daily statistics counters, which commit with the change.

and it returns the write's result. So the rules of a write (what it checks, what it changes,
what it logs and counts, and in which order) exist once, here, with no driver in sight: the
SQLite store runs a step with :func:`drive` on its writer thread inside its group commit, the
PostgreSQL store with :func:`drive_async` on an asyncpg connection, each in one transaction
that a raised error rolls back. The SQL is what both databases take (``?`` placeholders, which
the PostgreSQL store numbers; ``RETURNING``; ``ON CONFLICT``; window functions); the one thing
only PostgreSQL needs, locking the rows it reads for a change, is a field of :class:`Query`
that SQLite's driver leaves out.

The lifecycle's rules come from :mod:`axis.core.lifecycle` (which moves are legal, which status
code acknowledges, what a recall takes back, when pushing ends); the counters each write moves
from :mod:`axis.store.counters`; the chain's links from :mod:`axis.core.logchain`.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from axis.core import lifecycle
from axis.core.edxml_model import PackageKind
from axis.core.lifecycle import DeliveryEvent, DeliveryState, InvalidTransition, next_state
from axis.core.logchain import (
    Checkpoint,
    Draft,
    LogEntry,
    LogEvent,
    code_closed,
    received_detail,
)
from axis.core.stats import Metric
from axis.errors import DuplicateConflict
from axis.store import counters
from axis.store.base import (
    Agency,
    AgencyCode,
    Delivery,
    NewPackage,
    PackageRecord,
    PushJob,
    System,
)
from axis.store.rows import (
    AGENCY_COLUMNS,
    CODE_COLUMNS,
    DELIVERY_COLUMNS,
    PACKAGE_COLUMNS,
    SYSTEM_COLUMNS,
    code_row,
    delivery_row,
    marks,
    package_row,
    ts,
)

T = TypeVar("T")
Row = tuple[Any, ...]


@dataclass(frozen=True)
class Query:
    """A statement whose rows the step wants. ``pg_lock`` (e.g. ``FOR UPDATE``) is appended
    on PostgreSQL only, where other transactions may change the rows meanwhile."""

    sql: str
    args: tuple[Any, ...] = ()
    pg_lock: str = ""


@dataclass(frozen=True)
class Command:
    """A statement whose row count the step wants."""

    sql: str
    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Write:
    """A statement whose answer the step does not need. A driver may hold it, with the
    :class:`InsertMany` and ``Write`` operations that follow it, and run them together (in
    one statement on PostgreSQL, with the step's log entries and counters at its end): one
    round trip where each cost one (about two a status package on the national mix).

    So the writes held together must not depend on each other: the parts of one statement
    see the same snapshot (one does not see another's rows), and a row changed by two of them
    keeps only one change. They run before any operation that has an answer (:class:`Query`,
    :class:`Command`) or runs alone (:class:`CommandMany`, :data:`SERIALIZE`), which therefore
    sees them."""

    sql: str
    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class CommandMany:
    """One statement run for each of ``rows``."""

    sql: str
    rows: Sequence[Row]


@dataclass(frozen=True)
class InsertMany:
    """``rows`` into the ``columns`` of ``table``. ``pg_types`` are the columns' types on
    PostgreSQL, whose driver sends the rows as one array a column in one statement: one
    statement planned and run, where a statement a row cost each recipient of a package
    its own (9.2 a document on the national mix). It may be held with the writes around it,
    as a :class:`Write` is."""

    table: str
    columns: tuple[str, ...]
    pg_types: tuple[str, ...]
    rows: Sequence[Row]

    def __post_init__(self) -> None:
        if len(self.columns) != len(self.pg_types):
            raise ValueError("a type for each column")


@dataclass(frozen=True)
class InsertNumbered:
    """A new row of ``table`` (``values`` of ``columns``) whose ``number`` column the database
    gives, and ``rows`` of ``child`` (``child_columns``, then ``number``) that take that
    number (``child_pg_types`` as for :class:`InsertMany`). Answered with the number.

    It is the last operation of its step (PostgreSQL's driver refuses one after it), so a
    driver may send it with everything the step held, logged and counted: on PostgreSQL, a
    package that needs nothing read first (an edoc, a status that moves no delivery) is one
    statement, committed on its own, where it took four round trips (BEGIN, the package, the
    rest, COMMIT)."""

    table: str
    columns: tuple[str, ...]
    values: Row
    number: str
    child: str
    child_columns: tuple[str, ...]
    child_pg_types: tuple[str, ...]
    rows: Sequence[Row]


@dataclass(frozen=True)
class Serialize:
    """Run alone among the directory's changes: the first thing such a change does."""


SERIALIZE = Serialize()


@dataclass(frozen=True)
class Append:
    """A log entry the step writes, to be chained in the same transaction or just after."""

    draft: Draft


@dataclass(frozen=True)
class Counted:
    """Increments of the daily counters (:data:`axis.store.counters.Bump`)."""

    bumps: Sequence[counters.Bump]


class KeyTaken(DuplicateConflict):
    """A unique key another transaction took while this one ran (PostgreSQL: there is no
    write lock). The transaction is rolled back; the write may run again and see the row."""


Op = (
    Query
    | Command
    | Write
    | CommandMany
    | InsertMany
    | InsertNumbered
    | Serialize
    | Append
    | Counted
)
Step = Generator[Op, Any, T]


def drive(step: Step[T], execute: Callable[[Op], Any]) -> T:
    """Run ``step`` to its end, ``execute`` answering each of its operations."""
    answer: Any = None
    while True:
        try:
            op = step.send(answer)
        except StopIteration as done:
            result: T = done.value
            return result
        answer = execute(op)


async def drive_async(step: Step[T], execute: Callable[[Op], Awaitable[Any]]) -> T:
    """:func:`drive` for a driver that awaits each operation."""
    answer: Any = None
    while True:
        try:
            op = step.send(answer)
        except StopIteration as done:
            result: T = done.value
            return result
        answer = await execute(op)


# -- the operations, as steps of their own (so that ``yield from`` gives a typed answer) -------


def _rows(sql: str, *args: Any, pg_lock: str = "") -> Generator[Op, Any, list[Row]]:
    rows: list[Row] = yield Query(sql, args, pg_lock)
    return rows


def _count(sql: str, *args: Any) -> Generator[Op, Any, int]:
    changed: int = yield Command(sql, args)
    return changed


def _directory_change() -> Generator[Op, Any, None]:
    """The start of every change to the directory (agencies, codes, systems): serialized
    with the others (:data:`SERIALIZE`), and counted in ``directory_changes``, which commits
    with it, so that every hub process sees the directory it keeps in memory is stale."""
    yield SERIALIZE
    yield Command("UPDATE directory_changes SET n = n + 1 WHERE id = 1", ())


def _change(sql: str, *args: Any) -> Generator[Op, Any, None]:
    yield Write(sql, args)


def _many(sql: str, rows: Sequence[Row]) -> Generator[Op, Any, None]:
    if rows:
        yield CommandMany(sql, rows)


def _append(
    at: datetime,
    event: LogEvent,
    organ_id: str | None = None,
    package_id: str | None = None,
    detail: str | None = None,
    sha256: str | None = None,
    cert_sha256: str | None = None,
) -> Step[None]:
    """Write one log entry (see :class:`Append`)."""
    yield Append(Draft(ts(at), event.value, organ_id, package_id, detail, sha256, cert_sha256))


def _bump(bumps: list[counters.Bump]) -> Step[None]:
    """Move the statistics counters, in the same transaction as the change they count."""
    if bumps:
        yield Counted(bumps)


# -- agencies -------------------------------------------------------------------------------


def add_agency(agency: Agency, aliases: Sequence[str] = ()) -> Step[None]:
    """Register an agency holding its OrganId and ``aliases``, logging its certificate's
    fingerprint and each alias.

    Raises DuplicateConflict if the certificate or any of the codes is taken."""
    yield from _directory_change()
    codes = list(dict.fromkeys([agency.organ_id, *aliases]))
    owner = yield from _rows(
        "SELECT organ_id FROM agencies WHERE fingerprint = ?", agency.fingerprint
    )
    if owner:
        raise DuplicateConflict(
            f"agency {agency.organ_id}: its certificate is already registered (to {owner[0][0]})"
        )
    taken = yield from _rows(
        f"SELECT code, organ_id, successor FROM agency_codes WHERE code IN ({marks(codes)})"
        " ORDER BY code",
        *codes,
    )
    for code, holder, successor in taken:
        if code == holder == agency.organ_id:
            raise DuplicateConflict(f"agency {agency.organ_id} is already registered")
        why = f"closed ({successor} succeeds it)" if successor else f"held by {holder}"
        raise DuplicateConflict(f"agency {agency.organ_id}: code {code} is {why}")
    yield from _count(
        f"INSERT INTO agencies ({AGENCY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        agency.organ_id, agency.name, agency.cert_pem, agency.fingerprint, agency.endpoint,
        int(agency.active), ts(agency.registered_at), agency.system_id,
    )  # fmt: skip
    yield from _append(
        agency.registered_at,
        LogEvent.AGENCY_REGISTERED,
        organ_id=agency.organ_id,
        detail=agency.name,
        cert_sha256=agency.fingerprint,
    )
    for code in codes:
        yield from _count(
            "INSERT INTO agency_codes (code, organ_id, added_at) VALUES (?, ?, ?)",
            code, agency.organ_id, ts(agency.registered_at),
        )  # fmt: skip
        if code != agency.organ_id:
            yield from _append(
                agency.registered_at, LogEvent.CODE_ADDED, organ_id=agency.organ_id, detail=code
            )


def add_code(organ_id: str, code: str, at: datetime) -> Step[bool]:
    """Let an agency hold one more code; False if there is no such agency.

    Raises DuplicateConflict if the code is another's, or closed."""
    yield from _directory_change()
    if not (yield from _rows("SELECT 1 FROM agencies WHERE organ_id = ?", organ_id)):
        return False
    found = yield from _rows("SELECT organ_id, successor FROM agency_codes WHERE code = ?", code)
    if found:
        holder, successor = found[0]
        if successor is not None:
            raise DuplicateConflict(f"code {code} is closed ({successor} succeeds it)")
        if holder != organ_id:
            raise DuplicateConflict(f"code {code} is held by {holder}")
        return True
    yield from _count(
        "INSERT INTO agency_codes (code, organ_id, added_at) VALUES (?, ?, ?)",
        code, organ_id, ts(at),
    )  # fmt: skip
    yield from _append(at, LogEvent.CODE_ADDED, organ_id=organ_id, detail=code)
    return True


def close_code(code: str, successor: str, at: datetime) -> Step[AgencyCode]:
    """Close a code, held or not, naming its successor.

    Raises DuplicateConflict if it is closed already with another successor."""
    yield from _directory_change()
    found = yield from _rows(f"SELECT {CODE_COLUMNS} FROM agency_codes WHERE code = ?", code)
    if found:
        record = code_row(found[0])
        if record.successor == successor:
            return record
        if record.successor is not None:
            raise DuplicateConflict(
                f"code {code} is closed already: {record.successor} succeeds it"
            )
        yield from _count(
            "UPDATE agency_codes SET successor = ?, closed_at = ? WHERE code = ?",
            successor, ts(at), code,
        )  # fmt: skip
        closed = replace(record, successor=successor, closed_at=at)
    else:
        yield from _count(
            f"INSERT INTO agency_codes ({CODE_COLUMNS}) VALUES (?, NULL, ?, ?, ?)",
            code, ts(at), successor, ts(at),
        )  # fmt: skip
        closed = AgencyCode(code, None, at, successor, at)
    yield from _append(
        at, LogEvent.CODE_CLOSED, organ_id=closed.organ_id, detail=code_closed(code, successor)
    )
    return closed


def set_agency_active(organ_id: str, active: bool, at: datetime) -> Step[bool]:
    """Revoke or reactivate an agency; False if there is no such agency.

    A reactivation's entry names no certificate: the agency keeps the one its registration
    logged. (Naming the table's would let a certificate swapped behind the hub's back into
    the log by a revoke and a reactivation.)"""
    yield from _directory_change()
    found = yield from _rows("SELECT active FROM agencies WHERE organ_id = ?", organ_id)
    if not found:
        return False
    if bool(found[0][0]) == active:
        return True
    yield from _count("UPDATE agencies SET active = ? WHERE organ_id = ?", int(active), organ_id)
    event = LogEvent.AGENCY_REGISTERED if active else LogEvent.AGENCY_REVOKED
    yield from _append(at, event, organ_id, detail="reactivated" if active else None)
    return True


# -- systems (the national axis's face) ---------------------------------------------------


def add_system(system: System) -> Step[None]:
    """Add a system, logged (its id, never its secret).

    Raises DuplicateConflict if the id is taken."""
    yield from _directory_change()
    taken = yield from _rows("SELECT system_id FROM systems WHERE system_id = ?", system.system_id)
    if taken:
        raise DuplicateConflict(f"system {system.system_id} already exists")
    yield from _count(
        f"INSERT INTO systems ({SYSTEM_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
        system.system_id, system.name, system.sealed_secret, int(system.active),
        ts(system.added_at),
    )  # fmt: skip
    yield from _append(system.added_at, LogEvent.SYSTEM_ADDED, detail=system.system_id)


def set_system_active(system_id: str, active: bool, at: datetime) -> Step[bool]:
    """Revoke or reinstate a system, logged when it changes."""
    yield from _directory_change()
    changed = yield from _count(
        "UPDATE systems SET active = ? WHERE system_id = ? AND active <> ?",
        int(active), system_id, int(active),
    )  # fmt: skip
    if not changed:
        found = yield from _rows("SELECT 1 FROM systems WHERE system_id = ?", system_id)
        return bool(found)
    event = LogEvent.SYSTEM_ADDED if active else LogEvent.SYSTEM_REVOKED
    yield from _append(at, event, detail=system_id)
    return True


def mark_delivery(package_id: str, recipient: str, mark: str) -> Step[bool]:
    """A system's transport mark on one delivery (moves nothing; see axis.core.vdxp)."""
    changed = yield from _count(
        "UPDATE deliveries SET mark = ? WHERE package_id = ? AND recipient = ?",
        mark, package_id, recipient,
    )  # fmt: skip
    return bool(changed)


# -- packages and their deliveries ----------------------------------------------------------


def insert_package(p: NewPackage, look_first: bool = True) -> Step[tuple[PackageRecord, bool]]:
    """Commit a package, its deliveries, its log entry and counters, and what it does to an
    earlier package (a status recorded, a recall). The same sender, key and bytes again give
    the first record and False. Without ``look_first`` the step inserts at once and a key
    already taken fails the insert (KeyTaken): the caller's cue to run it again, looking.

    Raises DuplicateConflict: the key was committed before with other bytes."""
    if not look_first:
        return (yield from _created(p))
    rows = yield from _rows(
        f"SELECT {PACKAGE_COLUMNS} FROM packages WHERE sender = ? AND idempotency_key = ?",
        p.sender,
        p.idempotency_key,
    )
    if rows:
        first = package_row(rows[0])
        if first.sha256 != p.sha256:
            raise DuplicateConflict(
                f"{p.document_id!r} was already sent by {p.sender} with other content"
                f" (package {first.id})"
            )
        return first, False
    return (yield from _created(p))


_NEW_PACKAGE = (
    "id", "kind", "sender", "document_id", "idempotency_key", "business_type", "sha256",
    "subject", "received_at", "answer", "body", "notes",
)  # fmt: skip
# A new delivery's columns but its seq, the package's, which the database gives.
_NEW_DELIVERY = (
    "package_id", "recipient", "kind", "received_at", "state", "updated_at", "next_attempt_at",
)  # fmt: skip
_NEW_DELIVERY_PG = ("text", "text", "text", "text", "text", "text", "text")


def _created(p: NewPackage) -> Step[tuple[PackageRecord, bool]]:
    seq = yield from _insert_rows(p)
    record = PackageRecord(
        p.id, seq, p.kind, p.sender, p.document_id, p.business_type, p.sha256, p.subject,
        p.received_at, p.answer, p.notes,
    )  # fmt: skip
    return record, True


def _insert_rows(p: NewPackage) -> Step[int]:
    """What a new package changes, logs and counts, its own rows last (their insert is the
    step's last operation, :class:`InsertNumbered`): nothing before reads them."""
    now = ts(p.received_at)
    yield from _append(
        p.received_at,
        LogEvent.RECEIVED,
        p.received_by or None,
        p.id,
        received_detail(p.sender, p.recipients, p.notes),
        p.sha256,
    )
    if p.kind is PackageKind.EDOC:
        yield from _bump(counters.new_edoc(now, p.sender, p.recipients))
    else:
        yield from _bump([counters.one(now, Metric.STATUSES)])
    yield from _bump([counters.one(now, metric, key) for metric, key in p.tallies])
    if p.status_update is not None:
        yield from _record_status(p)
    for recalled in p.recall_of:
        yield from _recall(recalled, p.received_at)
    pushed = set(p.push_recipients)
    queued = DeliveryState.QUEUED.value
    seq: int = yield InsertNumbered(
        "packages", _NEW_PACKAGE,
        (p.id, p.kind.value, p.sender, p.document_id, p.idempotency_key, int(p.business_type),
         p.sha256, p.subject, now, p.answer, p.body, p.notes),
        "seq", "deliveries", _NEW_DELIVERY, _NEW_DELIVERY_PG,
        [(p.id, r, p.kind.value, now, queued, now, now if r in pushed else None)
         for r in p.recipients],
    )  # fmt: skip
    return int(seq)


def _record_status(p: NewPackage) -> Step[None]:
    """A status package's code goes on the delivery it answers; a code that is also a
    lifecycle event (01 acknowledges) moves that delivery."""
    u = p.status_update
    assert u is not None
    at = ts(p.received_at)
    yield from _bump([counters.one(at, Metric.STATUS_CODE, u.code)])
    yield from _append(p.received_at, LogEvent.STATUS, u.recipient, u.package_id, u.code)
    event = lifecycle.status_event(u.code)
    if event is None:
        # Held with the package's own rows (others: the package is new).
        yield from _code([u.package_id], u.recipient, u.code, at)
        return
    # The code goes on the delivery with the move, in the one update of its row.
    yield from _move(u.package_id, u.recipient, event, p.received_at, f"status {u.code}", u.code)


def _code(package_ids: Sequence[str], recipient: str, code: str, at: str) -> Step[None]:
    """A status ``code`` (and its time, ``at``) on some of ``recipient``'s deliveries."""
    yield from _change(
        "UPDATE deliveries SET status_code = ?, updated_at = ?"
        f" WHERE recipient = ? AND package_id IN ({marks(package_ids)})",
        code, at, recipient, *package_ids,
    )  # fmt: skip


def _recall(package_id: str, at: datetime) -> Step[None]:
    """Take back the deliveries of ``package_id`` that a recall still reaches (by recipient,
    so that every store logs them in one order)."""
    states = sorted(s.value for s in lifecycle.RECALLABLE)
    rows = yield from _rows(
        "SELECT recipient FROM deliveries"
        f" WHERE package_id = ? AND state IN ({marks(states)}) ORDER BY recipient",
        package_id,
        *states,
    )
    for (recipient,) in rows:
        yield from _move(package_id, recipient, DeliveryEvent.RECALLED, at)


def _move(
    package_id: str,
    recipient: str,
    event: DeliveryEvent,
    at: datetime,
    detail: str | None = None,
    status_code: str | None = None,
) -> Step[Delivery | None]:
    """Apply one lifecycle event to one delivery; a real change is logged and counted, a
    repeat changes nothing (not even updated_at), but for ``status_code`` (see
    :func:`_moves`). None if there is no such delivery.

    Raises InvalidTransition: the table has no such move."""
    moved = yield from _moves([package_id], recipient, event, at, detail, status_code)
    outcome = moved.get(package_id)
    if isinstance(outcome, InvalidTransition):
        raise outcome
    return outcome


def _moves(
    package_ids: Sequence[str],
    recipient: str,
    event: DeliveryEvent,
    at: datetime,
    detail: str | None = None,
    status_code: str | None = None,
) -> Step[dict[str, Delivery | InvalidTransition]]:
    """Apply one lifecycle event to several of one recipient's deliveries in a read, an
    update per state reached and the log entries, in the order of the ids (whatever order they
    came in: two batches over the same rows then lock them alike, and every store logs them in
    one order). A delivery the table cannot move is reported (its InvalidTransition) and left
    as it is; one that does not exist is missing from the answer. A repeat changes nothing,
    but for ``status_code``: the code of a status that is also this event, which every
    delivery it reaches takes (and its time), moved or not."""
    ids = sorted(set(package_ids))
    if not ids:
        return {}
    rows = yield from _rows(
        f"SELECT {DELIVERY_COLUMNS}, kind, received_at FROM deliveries"
        f" WHERE recipient = ? AND package_id IN ({marks(ids)}) ORDER BY package_id",
        recipient,
        *ids,
        pg_lock="FOR UPDATE",
    )
    outcome: dict[str, Delivery | InvalidTransition] = {}
    changed: dict[DeliveryState, list[str]] = {}
    coded: list[str] = []  # not moved, but taking status_code
    logged: list[tuple[DeliveryState, str]] = []  # each real move, in the ids' order
    bumps: list[counters.Bump] = []
    for row in rows:
        current = delivery_row(row[:-2])
        kind, received_at = row[-2:]
        try:
            state = next_state(current.state, event)
        except InvalidTransition as refused:
            outcome[current.package_id] = refused
            continue
        if state == current.state:
            if status_code is not None:
                coded.append(current.package_id)
                current = replace(current, status_code=status_code, updated_at=at)
            outcome[current.package_id] = current
            continue
        changed.setdefault(state, []).append(current.package_id)
        logged.append((state, current.package_id))
        if kind == PackageKind.EDOC:
            bumps.extend(counters.move(received_at, recipient, current.state, state, at))
        outcome[current.package_id] = replace(
            current, state=state, updated_at=at, status_code=status_code or current.status_code
        )
    code = () if status_code is None else (status_code,)
    for state, moved_ids in changed.items():
        # A delivery that is no longer pushed keeps no next try and no lease. The updates may
        # be held together: each id reaches one state, so no row is changed twice.
        ends_pushing = lifecycle.ends_pushing(state)
        yield from _change(
            "UPDATE deliveries SET state = ?, updated_at = ?"
            + (", status_code = ?" if code else "")
            + (
                ", next_attempt_at = NULL, lease_owner = NULL, lease_until = NULL"
                if ends_pushing
                else ""
            )
            + f" WHERE recipient = ? AND package_id IN ({marks(moved_ids)})",
            state.value,
            ts(at),
            *code,
            recipient,
            *moved_ids,
        )
    if coded and status_code is not None:
        yield from _code(coded, recipient, status_code, ts(at))
    for state, package_id in logged:
        yield from _append(
            at, LogEvent.of_state(state), recipient, package_id, detail or event.value
        )
    yield from _bump(bumps)
    return outcome


def apply_event(
    package_id: str, recipient: str, event: DeliveryEvent, at: datetime
) -> Step[Delivery | None]:
    """One lifecycle event on one delivery (a fetch, an ack), as its own write."""
    return (yield from _move(package_id, recipient, event, at))


def apply_events(
    package_ids: Sequence[str], recipient: str, event: DeliveryEvent, at: datetime
) -> Step[list[Delivery | InvalidTransition | None]]:
    """One lifecycle event on several of one recipient's deliveries (a batched read, a
    batched ack), as one write (:func:`_moves`). A delivery the table cannot move is reported
    (its InvalidTransition) and left as it is; one that does not exist is None."""
    moved = yield from _moves(package_ids, recipient, event, at)
    return [moved.get(package_id) for package_id in package_ids]


# -- push delivery --------------------------------------------------------------------------

# Due deliveries, at most ``per_recipient`` leased per recipient counting the live leases it
# has already (any owner's), oldest due first. The window and the count lock nothing; on
# PostgreSQL only the rows taken are locked, SKIP LOCKED, so two workers claiming at once take
# different rows, and a row leased meanwhile fails the WHERE checked again on the outer query.
_CLAIM = (
    "WITH leased AS (SELECT recipient, count(*) AS n FROM deliveries"
    " WHERE lease_owner IS NOT NULL AND lease_until >= ? GROUP BY recipient),"
    " due AS (SELECT package_id, recipient, next_attempt_at, ROW_NUMBER() OVER"
    " (PARTITION BY recipient ORDER BY next_attempt_at) AS nth FROM deliveries"
    " WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= ?"
    " AND state = ? AND (lease_until IS NULL OR lease_until < ?))"
    " SELECT d.package_id, d.recipient, d.attempts, d.received_at"
    " FROM deliveries d JOIN due"
    " ON due.package_id = d.package_id AND due.recipient = d.recipient"
    " LEFT JOIN leased ON leased.recipient = d.recipient"
    " WHERE due.nth + coalesce(leased.n, 0) <= ? AND d.state = ?"
    " AND (d.lease_until IS NULL OR d.lease_until < ?)"
    " ORDER BY due.next_attempt_at LIMIT ?"
)


def claim_pushes(
    owner: str, now: datetime, lease_s: float, limit: int, per_recipient: int
) -> Step[list[PushJob]]:
    """Lease up to ``limit`` due pushes to ``owner`` until ``now + lease_s``."""
    until = now + timedelta(seconds=lease_s)
    pushed = lifecycle.PUSHED_STATE.value
    rows = yield from _rows(
        _CLAIM,
        ts(now), ts(now), pushed, ts(now), per_recipient, pushed, ts(now), limit,
        pg_lock="FOR UPDATE OF d SKIP LOCKED",
    )  # fmt: skip
    yield from _many(
        "UPDATE deliveries SET lease_owner = ?, lease_until = ?"
        " WHERE package_id = ? AND recipient = ?",
        [(owner, ts(until), pid, recipient) for pid, recipient, _, _ in rows],
    )
    return [
        PushJob(pid, recipient, attempts, datetime.fromisoformat(received), until)
        for pid, recipient, attempts, received in rows
    ]


def release_leases(owner: str | None) -> Step[int]:
    """Give back ``owner``'s leases (None: everybody's); how many there were."""
    clear = "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL"
    if owner is None:
        return (yield from _count(clear + " WHERE lease_owner IS NOT NULL"))
    return (yield from _count(clear + " WHERE lease_owner = ?", owner))


def push_delivered(job: PushJob, at: datetime) -> Step[Delivery | None]:
    """The push got a 2xx: the delivery is ``delivered``, its lease and next try gone."""
    delivery = yield from _move(job.package_id, job.recipient, DeliveryEvent.PUSHED, at, "push")
    yield from _count(
        "UPDATE deliveries SET next_attempt_at = NULL, lease_owner = NULL, lease_until = NULL"
        " WHERE package_id = ? AND recipient = ?",
        job.package_id,
        job.recipient,
    )
    return delivery


def push_failed(
    job: PushJob, owner: str, at: datetime, error: str, retry_at: datetime | None
) -> Step[None]:
    """Count a failed push and schedule the next, or give up (``failed``) when ``retry_at`` is
    None; nothing at all if ``owner`` lost the lease meanwhile."""
    changed = yield from _count(
        "UPDATE deliveries SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?,"
        " lease_owner = NULL, lease_until = NULL"
        " WHERE package_id = ? AND recipient = ? AND lease_owner = ?",
        error[:500], None if retry_at is None else ts(retry_at), job.package_id,
        job.recipient, owner,
    )  # fmt: skip
    if changed == 1 and retry_at is None:
        yield from _move(job.package_id, job.recipient, DeliveryEvent.GAVE_UP, at, error[:500])


# -- checkpoints ----------------------------------------------------------------------------


def add_checkpoint(checkpoint: Checkpoint) -> Step[None]:
    """Keep a signed checkpoint; the first one for a chain length wins."""
    yield from _count(
        "INSERT INTO checkpoints (seq, head, at, signature) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (seq) DO NOTHING",
        checkpoint.seq, checkpoint.head, checkpoint.at, checkpoint.signature,
    )  # fmt: skip


class SqlWrites(abc.ABC):
    """The write half of :class:`axis.store.base.Store`, for a store that can run a step in one
    committed transaction (``_write``) and then calls :meth:`_committed` with the entries it
    logged."""

    _observers: list[Callable[[LogEntry], None]]

    @abc.abstractmethod
    async def _write(self, step: Step[T], *, per_value: bool = False) -> T:
        """Run ``step`` in one committed transaction (each store's own way): a store that
        lacks it cannot be made at all. ``per_value``: the step's statements are worth a plan
        for their values (a store that plans a write's statements once for all values,
        PostgreSQL's, plans these as it plans its reads)."""

    def observe(self, callback: Callable[[LogEntry], None]) -> None:
        """Call ``callback`` with every log entry once its transaction has committed."""
        self._observers.append(callback)

    def _committed(self, entries: list[LogEntry]) -> None:
        for entry in entries:
            counters.log_line(entry)
            for observer in self._observers:
                observer(entry)

    async def add_agency(self, agency: Agency, aliases: Sequence[str] = ()) -> None:
        await self._write(add_agency(agency, aliases))

    async def add_system(self, system: System) -> None:
        await self._write(add_system(system))

    async def set_system_active(self, system_id: str, active: bool) -> bool:
        return await self._write(set_system_active(system_id, active, datetime.now(UTC)))

    async def mark_delivery(self, package_id: str, recipient: str, mark: str) -> bool:
        return await self._write(mark_delivery(package_id, recipient, mark))

    async def add_code(self, organ_id: str, code: str) -> bool:
        return await self._write(add_code(organ_id, code, datetime.now(UTC)))

    async def close_code(self, code: str, successor: str) -> AgencyCode:
        return await self._write(close_code(code, successor, datetime.now(UTC)))

    async def set_agency_active(self, organ_id: str, active: bool) -> bool:
        return await self._write(set_agency_active(organ_id, active, datetime.now(UTC)))

    async def insert_package(self, package: NewPackage) -> tuple[PackageRecord, bool]:
        # The hub looked the key up just before (Hub.admit), or, for a status keyed by its
        # bytes, the bytes (Hub.accept): a resend that reaches the store raced its first
        # send, so the first try inserts without looking again (a read a package, on
        # SQLite's one writer thread). The unique key refuses a taken one, here or on
        # another worker; the step, run again looking, finds that row and answers as for
        # any resend (or refuses other bytes).
        try:
            return await self._write(insert_package(package, look_first=False))
        except KeyTaken:
            return await self._write(insert_package(package))

    async def apply_event(
        self, package_id: str, recipient: str, event: DeliveryEvent, at: datetime
    ) -> Delivery | None:
        return await self._write(apply_event(package_id, recipient, event, at))

    async def apply_events(
        self, package_ids: Sequence[str], recipient: str, event: DeliveryEvent, at: datetime
    ) -> list[Delivery | InvalidTransition | None]:
        return await self._write(apply_events(package_ids, recipient, event, at))

    async def claim_pushes(
        self, owner: str, now: datetime, lease_s: float, limit: int, per_recipient: int = 1_000_000
    ) -> list[PushJob]:
        # Ranges of times, a window function, a LIMIT: a plan for the values chooses.
        step = claim_pushes(owner, now, lease_s, limit, per_recipient)
        return await self._write(step, per_value=True)

    async def release_leases(self, owner: str) -> None:
        await self._write(release_leases(owner))

    async def release_all_leases(self) -> int:
        return await self._write(release_leases(None))

    async def push_delivered(self, job: PushJob, at: datetime) -> Delivery | None:
        return await self._write(push_delivered(job, at))

    async def push_failed(
        self, job: PushJob, owner: str, at: datetime, error: str, retry_at: datetime | None
    ) -> None:
        await self._write(push_failed(job, owner, at, error, retry_at))

    async def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        await self._write(add_checkpoint(checkpoint))
