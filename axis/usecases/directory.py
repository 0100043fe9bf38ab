"""The directory as the request path reads it, kept in memory while it stands still.

Every package asks the directory the same questions: which agency opened this connection
(by its certificate's fingerprint), which codes it holds, which agency holds each code the
package names. The answers change only when an operator changes the directory, a few times a
day, while a national hub asks them a dozen times per document. So a :class:`Directory`
keeps them, and :meth:`Directory.refresh` (one small query, made once per request, as it
authenticates) drops them all when the store's count of directory changes has moved: a
change made by another worker, or by ``axis agency revoke`` on the same database, is seen by
the next request, as before.

What the cache may not do is keep an answer read before a change under the count read after
it: a lookup that awaited while a refresh dropped the cache does not keep its answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from axis.core.logchain import LogEntry, LogEvent
from axis.store.base import Agency, AgencyCode, Store

K = TypeVar("K")
V = TypeVar("V")

# Entries of every kind kept at most: the directory of a country is a few thousand agencies
# and codes; past this (lookups of codes nobody holds, say) the kind starts again empty.
KEPT = 20_000

_DIRECTORY_EVENTS = frozenset(
    {
        LogEvent.AGENCY_REGISTERED,
        LogEvent.AGENCY_REVOKED,
        LogEvent.CODE_ADDED,
        LogEvent.CODE_CLOSED,
        LogEvent.SYSTEM_ADDED,
        LogEvent.SYSTEM_REVOKED,
    }
)


class Directory:
    """The store's directory lookups of the request path, answered from memory between two
    changes of the directory (see the module doc)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._changes: int | None = None  # the store's count the kept answers belong to
        self._generation = 0  # moves whenever the kept answers are dropped
        self._by_fingerprint: dict[str, Agency | None] = {}
        self._codes_of: dict[str, list[AgencyCode]] = {}
        self._holders: dict[str, tuple[AgencyCode, Agency | None] | None] = {}
        self.lookups = 0  # answers read from the store, and from memory: the hit ratio
        self.hits = 0
        # This process's own changes drop the answers at once, before their call returns.
        store.observe(self._saw)

    async def refresh(self) -> None:
        """Drop what is kept if the directory changed since it was read (one query).

        Raises:
            Unavailable: the store cannot be read.
        """
        changes = await self.store.directory_changes()
        if changes != self._changes:
            self._drop()
            self._changes = changes

    async def agency_by_fingerprint(self, fingerprint: str) -> Agency | None:
        """:meth:`Store.agency_by_fingerprint`, as of the last :meth:`refresh`."""
        return await self._kept(self._by_fingerprint, fingerprint, self.store.agency_by_fingerprint)

    async def agency_codes(self, organ_id: str) -> list[AgencyCode]:
        """:meth:`Store.agency_codes` of one agency, as of the last :meth:`refresh`."""
        return await self._kept(self._codes_of, organ_id, self.store.agency_codes)

    async def code_holder(self, code: str) -> tuple[AgencyCode, Agency | None] | None:
        """:meth:`Store.code_holder`, as of the last :meth:`refresh`."""
        return await self._kept(self._holders, code, self.store.code_holder)

    async def _kept(self, kept: dict[K, V], key: K, read: Callable[[K], Awaitable[V]]) -> V:
        if key in kept:
            self.hits += 1
            return kept[key]
        generation = self._generation
        value = await read(key)
        self.lookups += 1
        if generation == self._generation:  # nothing was dropped while the store answered
            if len(kept) >= KEPT:
                kept.clear()
            kept[key] = value
        return value

    def _saw(self, entry: LogEntry) -> None:
        if entry.event in _DIRECTORY_EVENTS:
            self._drop()
            self._changes = None  # the next refresh reads the count again

    def _drop(self) -> None:
        self._generation += 1
        self._by_fingerprint.clear()
        self._codes_of.clear()
        self._holders.clear()
