"""The read side of both stores (a mixin of :class:`axis.store.sqlite.SqliteStore` and
:class:`axis.store.postgres.PostgresStore`): lookups for the hub, and the operator reads —
statistics counters, the log, checkpoints. The SQL is written once, with ``?`` placeholders
(the PostgreSQL store numbers them).

Two paths, which each store provides. ``_lookup`` serves the point lookups of every request
(an indexed row or a page of the inbox); SQLite runs them on the event loop's own connection,
as they take microseconds, far less than handing work to a thread and back costs. ``_read``
serves scans and anything run under :meth:`snapshot` (statistics, the log, verification),
which may take long enough that the loop must not wait for them.

Either path takes ``keyed=True`` for a read that finds its rows by a list of their keys
(``IN (?, ?, …)``): one plan serves it whatever the values. PostgreSQL runs it on the
connections that plan each statement once (its writes'), where the reads' connections planned
such a read afresh at many of its calls (``axis.store.postgres.WRITE_SETTINGS`` has the
figures). SQLite plans every statement for its values anyway, and ignores it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from datetime import timedelta
from typing import Any

from axis.core.edxml_model import BusinessDocType, PackageKind
from axis.core.lifecycle import DeliveryState
from axis.core.logchain import Checkpoint, LogEntry, LogEvent
from axis.core.routing import Stored
from axis.store.base import (
    Agency,
    AgencyCode,
    Delivery,
    Hop,
    ItemFilter,
    ItemQuery,
    PackageRecord,
    System,
)
from axis.store.rows import (
    AGENCY_COLUMNS,
    CODE_COLUMNS,
    DELIVERY_COLUMNS,
    LOG_COLUMNS,
    LOG_HEAD,
    PACKAGE_COLUMNS,
    PENDING_STATES,
    SYSTEM_COLUMNS,
    agency_row,
    blob,
    checkpoint_row,
    code_row,
    delivery_row,
    dt,
    log_row,
    marks,
    package_row,
    stored_rows,
    system_row,
    ts,
)

# A pending entry (axis.store.postgres) read as the log's tail: seq 0, no links yet.
PENDING_AS_LOG = "0, at, event, organ_id, package_id, detail, sha256, '', '', cert_sha256"
DIRECTORY_EVENTS = tuple(
    e.value
    for e in (
        LogEvent.AGENCY_REGISTERED,
        LogEvent.AGENCY_REVOKED,
        LogEvent.CODE_ADDED,
        LogEvent.CODE_CLOSED,
    )
)


def _prefixed(alias: str, columns: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in columns.split(","))


_CODE_WIDTH = len(CODE_COLUMNS.split(","))
# A code and the agency holding it, if any, in one lookup.
CODE_HOLDER = (
    f"SELECT {_prefixed('c', CODE_COLUMNS)}, {_prefixed('a', AGENCY_COLUMNS)}"
    " FROM agency_codes c LEFT JOIN agencies a ON a.organ_id = c.organ_id WHERE c.code = ?"
)


_Q, _D, _F = DeliveryState.QUEUED.value, DeliveryState.DELIVERED.value, DeliveryState.FAILED.value
# A delivery to an agency of a system (the national axis's face), by the system's index.
SYSTEM_JOIN = "deliveries d JOIN agencies a ON a.organ_id = d.recipient"
# The pending states as literals, exactly as the partial index deliveries_pending says them
# (migration 7): with them the inbox reads a page from the index in order, nothing more.
PENDING_LITERAL = "d.state IN (" + ", ".join(f"'{s.value}'" for s in PENDING_STATES) + ")"
SYSTEM_DELIVERY = "a.system_id = ?"


def _item_filter(chosen: ItemFilter, fail: str) -> tuple[str, tuple[str, ...]]:
    """The WHERE of a received list's filter (axis.core.vdxp.item_state says it in Python);
    ``fail``: the mark that says a delivery failed."""
    if chosen is ItemFilter.INITIAL:
        return "d.state = ? AND d.mark IS NULL", (_Q,)
    if chosen is ItemFilter.PROCESSING:
        return (
            "(d.state = ? OR (d.state = ? AND d.mark IS NOT NULL))"
            " AND (d.mark IS NULL OR d.mark <> ?)",
            (_D, _Q, fail),
        )
    if chosen is ItemFilter.FAIL:
        return "(d.state = ? OR (d.state IN (?, ?) AND d.mark = ?))", (_F, _Q, _D, fail)
    return f"d.state IN ({marks(PENDING_STATES)})", tuple(s.value for s in PENDING_STATES)


class SqlReads:
    """Queries through ``_read`` and ``_lookup``, which come from the store."""

    # Provided by the store: one query, answered with a list of rows (tuples).
    _read: Callable[..., Awaitable[list[Any]]]
    _lookup: Callable[..., Awaitable[list[Any]]]

    async def _caught_up(self) -> None:
        """Before a read of the chained log or of the statistics: return once everything
        committed before this call is chained and counted. SQLite chains and counts in the
        commit itself, so at once; PostgreSQL links after the commit (its chainer)."""

    # -- agencies ---------------------------------------------------------------------------

    async def get_agency(self, organ_id: str) -> Agency | None:
        rows = await self._lookup(
            f"SELECT {AGENCY_COLUMNS} FROM agencies WHERE organ_id = ?", (organ_id,)
        )
        return agency_row(rows[0]) if rows else None

    async def agency_by_fingerprint(self, fingerprint: str) -> Agency | None:
        rows = await self._lookup(
            f"SELECT {AGENCY_COLUMNS} FROM agencies WHERE fingerprint = ?", (fingerprint,)
        )
        return agency_row(rows[0]) if rows else None

    async def directory_changes(self) -> int:
        rows = await self._lookup("SELECT n FROM directory_changes WHERE id = 1")
        return int(rows[0][0])

    async def find_code(self, code: str) -> AgencyCode | None:
        rows = await self._lookup(
            f"SELECT {CODE_COLUMNS} FROM agency_codes WHERE code = ?", (code,)
        )
        return code_row(rows[0]) if rows else None

    async def code_holder(self, code: str) -> tuple[AgencyCode, Agency | None] | None:
        rows = await self._lookup(CODE_HOLDER, (code,))
        if not rows:
            return None
        row = tuple(rows[0])
        record = code_row(row[:_CODE_WIDTH])
        holder = row[_CODE_WIDTH:]
        return record, agency_row(holder) if holder[0] is not None else None

    async def agency_codes(self, organ_id: str | None = None) -> list[AgencyCode]:
        if organ_id is None:
            rows = await self._read(f"SELECT {CODE_COLUMNS} FROM agency_codes ORDER BY code")
        else:
            rows = await self._lookup(
                f"SELECT {CODE_COLUMNS} FROM agency_codes WHERE organ_id = ? ORDER BY code",
                (organ_id,),
            )
        return [code_row(r) for r in rows]

    async def list_agencies(self) -> list[Agency]:
        rows = await self._read(f"SELECT {AGENCY_COLUMNS} FROM agencies ORDER BY organ_id")
        return [agency_row(r) for r in rows]

    async def get_system(self, system_id: str) -> System | None:
        rows = await self._lookup(
            f"SELECT {SYSTEM_COLUMNS} FROM systems WHERE system_id = ?", (system_id,)
        )
        return system_row(rows[0]) if rows else None

    async def list_systems(self) -> list[System]:
        rows = await self._read(f"SELECT {SYSTEM_COLUMNS} FROM systems ORDER BY system_id")
        return [system_row(r) for r in rows]

    async def system_agencies(self, system_id: str) -> list[Agency]:
        rows = await self._lookup(
            f"SELECT {AGENCY_COLUMNS} FROM agencies WHERE system_id = ? ORDER BY organ_id",
            (system_id,),
        )
        return [agency_row(r) for r in rows]

    async def agency_counts(self) -> tuple[int, int]:
        rows = await self._read("SELECT count(*), coalesce(sum(active), 0) FROM agencies")
        return int(rows[0][0]), int(rows[0][1])

    # -- packages ---------------------------------------------------------------------------

    async def find_by_sha256(self, sender: str, sha256: str) -> PackageRecord | None:
        rows = await self._lookup(
            f"SELECT {PACKAGE_COLUMNS} FROM packages WHERE sender = ? AND sha256 = ?"
            " ORDER BY seq LIMIT 1",
            (sender, sha256),
        )
        return package_row(rows[0]) if rows else None

    async def find_by_key(self, sender: str, idempotency_key: str) -> PackageRecord | None:
        rows = await self._lookup(
            f"SELECT {PACKAGE_COLUMNS} FROM packages WHERE sender = ? AND idempotency_key = ?",
            (sender, idempotency_key),
        )
        return package_row(rows[0]) if rows else None

    async def find_document(self, sender: str, document_id: str) -> PackageRecord | None:
        rows = await self._lookup(
            f"SELECT {PACKAGE_COLUMNS} FROM packages WHERE sender = ? AND document_id = ?"
            " AND business_type = ? AND kind = ?",
            (sender, document_id, int(BusinessDocType.NEW), PackageKind.EDOC.value),
        )
        return package_row(rows[0]) if rows else None

    async def stored_edocs(
        self, sender: str, document_id: str, recipients: Collection[str] | None = None
    ) -> tuple[Stored, ...]:
        # The recipients in the join's condition, not the WHERE: an edoc none of them
        # received is still listed (with no delivery), as routing needs to know it exists.
        only = sorted(recipients) if recipients is not None else []
        if recipients is None:
            chosen = ""
        elif only:
            chosen = f" AND d.recipient IN ({marks(only)})"
        else:
            chosen = " AND 1 = 0"  # nobody's deliveries: the edocs alone
        rows = await self._lookup(
            "SELECT p.id, p.business_type, d.recipient, d.status_code, d.state"
            f" FROM packages p LEFT JOIN deliveries d ON d.package_id = p.id{chosen}"
            " WHERE p.sender = ? AND p.document_id = ? AND p.kind = ?"
            " ORDER BY p.seq DESC, d.recipient",
            (*only, sender, document_id, PackageKind.EDOC.value),
            keyed=True,
        )
        return stored_rows(rows)

    async def get_record(self, package_id: str) -> PackageRecord | None:
        rows = await self._lookup(
            f"SELECT {PACKAGE_COLUMNS} FROM packages WHERE id = ?", (package_id,)
        )
        return package_row(rows[0]) if rows else None

    async def get_package(self, package_id: str) -> tuple[PackageRecord, bytes] | None:
        rows = await self._lookup(
            f"SELECT {PACKAGE_COLUMNS}, body FROM packages WHERE id = ?", (package_id,)
        )
        return (package_row(rows[0][:-1]), blob(rows[0][-1])) if rows else None

    # -- deliveries -------------------------------------------------------------------------

    async def deliveries(self, package_id: str) -> list[Delivery]:
        rows = await self._lookup(
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE package_id = ? ORDER BY recipient",
            (package_id,),
        )
        return [delivery_row(r) for r in rows]

    async def delivery(self, package_id: str, recipient: str) -> Delivery | None:
        rows = await self._lookup(
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE package_id = ? AND recipient = ?",
            (package_id, recipient),
        )
        return delivery_row(rows[0]) if rows else None

    async def inbox(self, recipient: str, after: int, limit: int) -> list[PackageRecord]:
        # The size comes from the row's header (SQLite) or the TOAST pointer (PostgreSQL):
        # the body itself is not read.
        return [record for record, _ in await self.inbox_sized(recipient, after, limit)]

    async def inbox_sized(
        self, recipient: str, after: int, limit: int
    ) -> list[tuple[PackageRecord, int]]:
        rows = await self._lookup(
            f"SELECT {', '.join('p.' + c.strip() for c in PACKAGE_COLUMNS.split(','))},"
            " length(p.body)"
            " FROM deliveries d JOIN packages p ON p.id = d.package_id"
            f" WHERE d.recipient = ? AND {PENDING_LITERAL} AND d.seq > ?"
            " ORDER BY d.seq LIMIT ?",
            (recipient, after, limit),
        )
        return [(package_row(r[:-1]), int(r[-1] or 0)) for r in rows]

    async def received_items(
        self, system_id: str, kind: PackageKind, query: ItemQuery
    ) -> list[tuple[PackageRecord, list[Delivery]]]:
        where, args = _item_filter(query.filter, query.fail_mark)
        clauses = [SYSTEM_DELIVERY, "d.kind = ?", where]
        params: list[Any] = [system_id, kind.value, *args]
        if query.since is not None:
            clauses.append("d.received_at >= ?")
            params.append(ts(query.since))
        if query.until is not None:  # to the end of its second
            clauses.append("d.received_at < ?")
            params.append(ts(query.until + timedelta(seconds=1)))
        condition = " AND ".join(clauses)
        # Page over packages, not deliveries: one to two agencies of the system is one item.
        page = await self._lookup(
            f"SELECT d.package_id, min(d.seq) AS first FROM {SYSTEM_JOIN} WHERE {condition}"
            " GROUP BY d.package_id ORDER BY first LIMIT ? OFFSET ?",
            (*params, query.limit, query.offset),
        )
        ids = [str(row[0]) for row in page]
        if not ids:
            return []
        records = {
            r.id: r
            for r in map(
                package_row,
                await self._lookup(
                    f"SELECT {PACKAGE_COLUMNS} FROM packages WHERE id IN ({marks(ids)})",
                    tuple(ids),
                    keyed=True,
                ),
            )
        }
        held: dict[str, list[Delivery]] = {}
        for row in await self._lookup(
            f"SELECT {_prefixed('d', DELIVERY_COLUMNS)} FROM {SYSTEM_JOIN}"
            f" WHERE a.system_id = ? AND d.package_id IN ({marks(ids)}) AND {where}"
            " ORDER BY d.recipient",
            (system_id, *ids, *args),
        ):
            delivery = delivery_row(row)
            held.setdefault(delivery.package_id, []).append(delivery)
        return [(records[i], held.get(i, [])) for i in ids]

    async def system_deliveries(self, package_id: str, system_id: str) -> list[Delivery]:
        rows = await self._lookup(
            f"SELECT {_prefixed('d', DELIVERY_COLUMNS)} FROM {SYSTEM_JOIN}"
            " WHERE d.package_id = ? AND a.system_id = ? ORDER BY d.recipient",
            (package_id, system_id),
        )
        return [delivery_row(r) for r in rows]

    async def count_received(self, system_id: str, kind: PackageKind) -> int:
        where, args = _item_filter(ItemFilter.PENDING, "")
        rows = await self._lookup(
            f"SELECT count(DISTINCT d.package_id) FROM {SYSTEM_JOIN}"
            f" WHERE {SYSTEM_DELIVERY} AND d.kind = ? AND {where}",
            (system_id, kind.value, *args),
        )
        return int(rows[0][0])

    async def deliveries_in(self, state: DeliveryState, limit: int) -> list[Delivery]:
        rows = await self._read(
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE state = ?"
            " ORDER BY updated_at DESC LIMIT ?",
            (state.value, limit),
        )
        return [delivery_row(r) for r in rows]

    async def oldest_pending(self, limit: int) -> list[Delivery]:
        rows = await self._read(
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE state IN (?, ?) ORDER BY seq LIMIT ?",
            (DeliveryState.QUEUED.value, DeliveryState.DELIVERED.value, limit),
        )
        return [delivery_row(r) for r in rows]

    # -- the log and the statistics ---------------------------------------------------------

    async def trace(self, package_id: str) -> list[Hop]:
        # One statement, so one state: read as two, a chain pass between them (PostgreSQL
        # chains just after the commit) moved an entry out of the second before the first saw it.
        rows = await self._read(
            "SELECT organ_id, event, at, detail FROM ("
            " SELECT organ_id, event, at, detail, 0 AS part, seq AS n FROM log"
            " WHERE package_id = ?"
            " UNION ALL SELECT organ_id, event, at, detail, 1 AS part, id AS n FROM log_pending"
            " WHERE package_id = ?) AS hops ORDER BY part, n",
            (package_id, package_id),
        )
        return [Hop(organ_id or "", event, dt(at), detail) for organ_id, event, at, detail in rows]

    async def log_entries(self, after: int, limit: int) -> list[LogEntry]:
        await self._caught_up()
        rows = await self._read(
            f"SELECT {LOG_COLUMNS} FROM log WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
        )
        return [log_row(r) for r in rows]

    async def log_tail(self, limit: int) -> list[LogEntry]:
        await self._caught_up()
        rows = await self._read(
            f"SELECT {LOG_COLUMNS} FROM log ORDER BY seq DESC LIMIT ?", (limit,)
        )
        return [log_row(r) for r in reversed(rows)]

    async def log_head(self) -> tuple[int, str | None]:
        await self._caught_up()
        rows = await self._read(LOG_HEAD)
        return (int(rows[0][0]), rows[0][1]) if rows else (0, None)

    async def received_entries(self, after: int, upto: int, limit: int) -> list[LogEntry]:
        await self._caught_up()
        rows = await self._read(
            f"SELECT {LOG_COLUMNS} FROM log WHERE event = 'received' AND seq > ? AND seq <= ?"
            " ORDER BY seq LIMIT ?",
            (after, upto, limit),
        )
        return [log_row(r) for r in rows]

    async def state_entries(self, package_ids: list[str], upto: int) -> list[LogEntry]:
        if not package_ids:
            return []
        rows = await self._read(
            f"SELECT {LOG_COLUMNS} FROM log WHERE package_id IN ({marks(package_ids)})"
            " AND event != 'received' AND seq <= ? ORDER BY seq",
            (*package_ids, upto),
        )
        rows += await self._read(
            f"SELECT {PENDING_AS_LOG} FROM log_pending WHERE package_id IN"
            f" ({marks(package_ids)}) AND event != 'received' ORDER BY id",
            tuple(package_ids),
        )
        return [log_row(r) for r in rows]

    async def package_sizes(self, package_ids: list[str]) -> dict[str, int]:
        if not package_ids:
            return {}
        rows = await self._read(
            f"SELECT id, length(body) FROM packages WHERE id IN ({marks(package_ids)})",
            tuple(package_ids),
            keyed=True,
        )
        return {pid: int(size or 0) for pid, size in rows}

    async def package_bodies(self, package_ids: list[str]) -> dict[str, bytes]:
        if not package_ids:
            return {}
        rows = await self._read(
            f"SELECT id, body FROM packages WHERE id IN ({marks(package_ids)})",
            tuple(package_ids),
            keyed=True,
        )
        return {pid: blob(body) for pid, body in rows}

    async def deliveries_of(self, package_ids: list[str]) -> list[Delivery]:
        if not package_ids:
            return []
        rows = await self._read(
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE package_id IN ({marks(package_ids)})",
            tuple(package_ids),
            keyed=True,
        )
        return [delivery_row(r) for r in rows]

    async def unlogged_package(self) -> str | None:
        rows = await self._read(
            "SELECT p.id FROM packages p WHERE NOT EXISTS (SELECT 1 FROM log l"
            " WHERE l.package_id = p.id AND l.event = 'received')"
            " AND NOT EXISTS (SELECT 1 FROM log_pending l"
            " WHERE l.package_id = p.id AND l.event = 'received') ORDER BY p.seq LIMIT 1"
        )
        return str(rows[0][0]) if rows else None

    async def agency_entries(self) -> list[LogEntry]:
        rows = await self._read(
            f"SELECT {LOG_COLUMNS} FROM log WHERE event IN ({marks(DIRECTORY_EVENTS)})"
            " ORDER BY seq",
            DIRECTORY_EVENTS,
        )
        rows += await self._read(
            f"SELECT {PENDING_AS_LOG} FROM log_pending"
            f" WHERE event IN ({marks(DIRECTORY_EVENTS)}) ORDER BY id",
            DIRECTORY_EVENTS,
        )
        return [log_row(r) for r in rows]

    async def unchained_entries(self) -> int:
        rows = await self._read("SELECT count(*) FROM log_pending")
        return int(rows[0][0])

    async def checkpoints(self) -> list[Checkpoint]:
        rows = await self._read("SELECT seq, head, at, signature FROM checkpoints ORDER BY seq")
        return [checkpoint_row(r) for r in rows]

    async def counter_total(self, metric: str) -> int:
        await self._caught_up()
        rows = await self._read("SELECT coalesce(sum(n), 0) FROM daily WHERE metric = ?", (metric,))
        return int(rows[0][0])

    async def counter_rows(
        self, day_from: str | None, day_to: str | None
    ) -> list[tuple[str, str, str, int]]:
        await self._caught_up()
        rows = await self._read(
            "SELECT day, metric, key, n FROM daily WHERE day >= ? AND day <= ?",
            (day_from or "0000-00-00", day_to or "9999-99-99"),
        )
        return [(day, metric, key, int(n)) for day, metric, key, n in rows]
