"""Storage behind one protocol: :class:`axis.store.base.Store`.

``open_store(url)`` picks the implementation from the URL; everything above the store speaks only
the protocol: SQLite (:mod:`axis.store.sqlite`) embedded, PostgreSQL (:mod:`axis.store.postgres`)
shared by several hub workers.
"""

from __future__ import annotations

from pathlib import Path

from axis.store.base import Store


def open_store(url: str, serving: bool = False) -> Store:
    """A store for ``url``: ``postgresql://user@host/db`` (PostgreSQL, shared by several
    workers), or ``sqlite:///path/axis.db`` or a plain path (SQLite, embedded). ``serving``:
    the hub's own store, which copies SQLite's WAL beside its writer (a command that opens
    the file for a moment, or beside a running hub, leaves that to the hub)."""
    if url.startswith(("postgresql://", "postgres://")):
        from axis.store.postgres import PostgresStore

        return PostgresStore(url)
    from axis.store.sqlite import SqliteStore

    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
    return SqliteStore(Path(path), background_checkpoint=serving)


__all__ = ["Store", "open_store"]
