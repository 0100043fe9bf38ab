"""``axis log verify``: prove the hub's records intact, or name the first thing that is not.

It reads one consistent snapshot of the store and checks, in order:

1. every checkpoint carries the hub's signature;
2. the chain: each entry hashes to its ``hash`` and points at the one before it, each
   checkpoint's head is the hash of the entry it counts, and no long stretch of entries goes
   unsigned (deleting the checkpoints and re-chaining a rewritten history shows up here);
3. every package the log records as received is stored, still hashes to the recorded
   SHA-256, still has the recorded sender and recipients, and each delivery is in the state
   (and has the status code) that replaying its log entries gives;
4. no stored package is missing from the log, and every agency row matches its latest
   registered/revoked entry (certificate fingerprint and active flag), and every code of the
   directory is held and closed as the code entries say.

Bodies are read in batches of at most 64 MiB, so large stores verify in bounded memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509

from axis.core.lifecycle import DeliveryState
from axis.core.logchain import (
    GENESIS,
    Checkpoint,
    LogEntry,
    LogEvent,
    checkpoint_valid,
    closed_code,
    received_detail,
    verify_chain,
)
from axis.store.base import Delivery, Store

PAGE = 5000
RECEIVED_PAGE = 200
BODY_BATCH_BYTES = 64 * 1024 * 1024

Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class VerifyReport:
    """What ``axis log verify`` found: counts, and the first problem (None: all intact)."""

    entries: int
    checkpoints: int
    packages: int
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


class Broken(Exception):
    """The first problem found; its message names the entry, package or agency."""


@dataclass(frozen=True)
class Cadence:
    """How often the hub signs (``[log]`` in axis.toml): a longer unsigned run is suspect."""

    every: int = 1000
    interval_s: float = 60.0

    def suspicious(self, entries: int, span_s: float) -> bool:
        # Both at once, with slack: a busy second adds entries between two ticks of the
        # checkpointer, and a hub killed between checkpoints leaves an unsigned run that spans
        # its downtime (it signs again as soon as it restarts).
        return entries > 3 * self.every and span_s > 3 * self.interval_s


async def verify_log(
    store: Store,
    hub_cert: x509.Certificate,
    progress: Progress | None = None,
    cadence: Cadence | None = None,
) -> VerifyReport:
    """Check the log, its checkpoints, the packages and the agencies (see the module doc).

    Give it a store of its own (``axis log verify`` opens one): the snapshot holds that
    store's reader for the whole check, so a running hub sharing it would read stale data.
    """
    counts = {"entries": 0, "checkpoints": 0, "packages": 0}
    try:
        async with store.snapshot():
            await _verify(store, hub_cert, progress or (lambda what, n: None), cadence, counts)
    except Broken as problem:
        return VerifyReport(
            counts["entries"], counts["checkpoints"], counts["packages"], str(problem)
        )
    return VerifyReport(counts["entries"], counts["checkpoints"], counts["packages"])


async def _verify(
    store: Store,
    hub_cert: x509.Certificate,
    progress: Progress,
    cadence: Cadence | None,
    counts: dict[str, int],
) -> None:
    checkpoints = {c.seq: c for c in await store.checkpoints()}
    counts["checkpoints"] = len(checkpoints)
    for checkpoint in checkpoints.values():
        if not checkpoint_valid(checkpoint, hub_cert):
            raise Broken(f"checkpoint {checkpoint.seq}: its signature is not the hub's")
    head = await _verify_chain(store, checkpoints, cadence or Cadence(), progress, counts)
    await _verify_received(store, head, progress, counts)
    unlogged = await store.unlogged_package()
    if unlogged is not None:
        raise Broken(f"package {unlogged}: stored, but the log has no record of its arrival")
    await _verify_agencies(store)


async def _verify_chain(
    store: Store,
    checkpoints: dict[int, Checkpoint],
    cadence: Cadence,
    progress: Progress,
    counts: dict[str, int],
) -> int:
    prev, seq = GENESIS, 0
    run_start: LogEntry | None = None  # the first entry no checkpoint covers yet
    last: LogEntry | None = None
    while page := await store.log_entries(seq, PAGE):
        broken = verify_chain(page, prev, seq + 1)
        if broken is not None:
            raise Broken(f"entry {broken.seq}: {broken.reason}")
        for entry in page:
            run_start = run_start or entry
            checkpoint = checkpoints.get(entry.seq)
            if checkpoint is not None:
                if checkpoint.head != entry.hash:
                    raise Broken(
                        f"entry {entry.seq}: differs from what checkpoint {entry.seq} signed"
                    )
                _check_run(run_start, entry, cadence)
                run_start = None
        prev, seq, last = page[-1].hash, page[-1].seq, page[-1]
        counts["entries"] = seq
        progress("log entries", len(page))
    beyond = [c for c in checkpoints if c > seq]
    if beyond:
        raise Broken(
            f"entry {seq + 1}: missing (checkpoint {max(beyond)} was signed over {max(beyond)}"
            f" entries, the log now has {seq})"
        )
    if run_start is not None and last is not None:
        _check_run(run_start, last, cadence)
    return seq


def _check_run(first: LogEntry, last: LogEntry, cadence: Cadence) -> None:
    entries = last.seq - first.seq + 1
    try:
        span = (datetime.fromisoformat(last.at) - datetime.fromisoformat(first.at)).total_seconds()
    except ValueError:
        raise Broken(f"entry {first.seq}: its time is not a timestamp") from None
    if cadence.suspicious(entries, span):
        raise Broken(
            f"entries {first.seq}-{last.seq}: {entries} entries over {span:.0f} s without a"
            f" signed checkpoint (the hub signs every {cadence.every} entries or"
            f" {cadence.interval_s:g} s): checkpoints were removed"
        )


async def _verify_received(
    store: Store, head: int, progress: Progress, counts: dict[str, int]
) -> None:
    after = 0
    while page := await store.received_entries(after, head, RECEIVED_PAGE):
        ids = [e.package_id for e in page if e.package_id]
        await _verify_bodies(store, page)
        await _verify_deliveries(store, page, ids, head)
        after = page[-1].seq
        counts["packages"] += len(page)
        progress("packages", len(page))


async def _verify_bodies(store: Store, page: list[LogEntry]) -> None:
    sizes = await store.package_sizes([e.package_id for e in page if e.package_id])
    batch: list[LogEntry] = []
    batch_bytes = 0
    for entry in page:
        if entry.package_id not in sizes:
            raise Broken(
                f"package {entry.package_id}: missing (the log recorded its arrival at entry"
                f" {entry.seq})"
            )
        size = sizes[entry.package_id]
        if batch and batch_bytes + size > BODY_BATCH_BYTES:
            await _hash_batch(store, batch)
            batch, batch_bytes = [], 0
        batch.append(entry)
        batch_bytes += size
    if batch:
        await _hash_batch(store, batch)


async def _hash_batch(store: Store, batch: list[LogEntry]) -> None:
    bodies = await store.package_bodies([e.package_id for e in batch if e.package_id])
    for entry in batch:
        assert entry.package_id is not None
        actual = hashlib.sha256(bodies.get(entry.package_id, b"")).hexdigest()
        if actual != entry.sha256:
            raise Broken(
                f"package {entry.package_id}: changed since it arrived (sha256 {actual[:16]}…,"
                f" the log recorded {str(entry.sha256)[:16]}…)"
            )


async def _verify_deliveries(store: Store, page: list[LogEntry], ids: list[str], head: int) -> None:
    stored: dict[str, list[Delivery]] = {pid: [] for pid in ids}
    for delivery in await store.deliveries_of(ids):
        stored.setdefault(delivery.package_id, []).append(delivery)
    records = {pid: await store.get_record(pid) for pid in ids}
    expected = _replay(await store.state_entries(ids, head))
    for entry in page:
        pid = entry.package_id or ""
        record = records.get(pid)
        recipients = [d.recipient for d in stored.get(pid, [])]
        if (
            record is None
            or received_detail(record.sender, recipients, record.notes) != entry.detail
        ):
            raise Broken(
                f"package {pid}: its sender or recipients are not what the log recorded at"
                f" entry {entry.seq} ({entry.detail})"
            )
        for delivery in stored.get(pid, []):
            state, code = expected.get((pid, delivery.recipient), (DeliveryState.QUEUED, None))
            if (delivery.state, delivery.status_code) != (state, code):
                raise Broken(
                    f"package {pid}: the delivery to {delivery.recipient} is"
                    f" {delivery.state.value}/{delivery.status_code}, the log says"
                    f" {state.value}/{code}"
                )


def _replay(entries: list[LogEntry]) -> dict[tuple[str, str], tuple[DeliveryState, str | None]]:
    """Each delivery's state and last status code, as the log tells it."""
    states: dict[tuple[str, str], tuple[DeliveryState, str | None]] = {}
    for entry in entries:
        key = (entry.package_id or "", entry.organ_id or "")
        state, code = states.get(key, (DeliveryState.QUEUED, None))
        try:
            event = LogEvent(entry.event)
        except ValueError:
            raise Broken(f"entry {entry.seq}: {entry.event!r} is no event the hub logs") from None
        moved_to = event.state()
        if moved_to is not None:
            state = moved_to
        elif event is LogEvent.STATUS:
            code = entry.detail
        states[key] = (state, code)
    return states


@dataclass
class _Directory:
    """The directory as its log entries tell it."""

    latest: dict[str, LogEntry] = field(default_factory=dict)  # OrganId -> its last word
    fingerprints: dict[str, str] = field(default_factory=dict)  # OrganId -> certificate
    codes: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)

    def replay(self, logged: LogEntry) -> None:
        if logged.event == LogEvent.CODE_ADDED:
            self.codes[logged.detail or ""] = (logged.organ_id, None)
        elif logged.event == LogEvent.CODE_CLOSED:
            closed = closed_code(logged.detail)
            if closed is None:
                raise Broken(f"entry {logged.seq}: {logged.detail!r} names no closed code")
            self.codes[closed[0]] = (logged.organ_id, closed[1])
        else:
            organ_id = logged.organ_id or ""
            self.latest[organ_id] = logged
            certificate = logged.certificate()
            if certificate is not None:  # a reactivation names none: the registration's stands
                self.fingerprints[organ_id] = certificate
                self.codes.setdefault(organ_id, (organ_id, None))


async def _verify_agencies(store: Store) -> None:
    logged = _Directory()
    for logged_entry in await store.agency_entries():
        logged.replay(logged_entry)
    latest, fingerprints, codes = logged.latest, logged.fingerprints, logged.codes
    for agency in await store.list_agencies():
        entry = latest.get(agency.organ_id)
        if entry is None:
            raise Broken(f"agency {agency.organ_id}: registered, but the log never recorded it")
        if fingerprints.get(agency.organ_id) != agency.fingerprint:
            raise Broken(
                f"agency {agency.organ_id}: its certificate is not the one the log recorded"
            )
        if agency.active != (entry.event == LogEvent.AGENCY_REGISTERED):
            raise Broken(
                f"agency {agency.organ_id}: {'active' if agency.active else 'revoked'},"
                f" but the log's last word at entry {entry.seq} is {entry.event}"
            )
    for record in await store.agency_codes():
        logged_as = codes.pop(record.code, None)
        if logged_as != (record.organ_id, record.successor):
            raise Broken(
                f"code {record.code}: held by {record.organ_id or 'nobody'}"
                f"{f', closed for {record.successor}' if record.closed else ''},"
                " which is not what the log recorded"
            )
    if codes:
        code = min(codes)
        raise Broken(f"code {code}: the log recorded it, but the directory has no such code")
