"""Storage behind one protocol: :class:`axis.store.base.Store`.

``open_store(url)`` picks the implementation from the URL; everything above the store speaks only
the protocol, so the PostgreSQL store can slot in beside SQLite.
"""

from __future__ import annotations

from pathlib import Path

from axis.store.base import Store


def open_store(url: str) -> Store:
    """A store for ``url``: ``sqlite:///path/axis.db`` or a plain path (SQLite).

    Raises:
        ValueError: a URL scheme this build cannot serve.
    """
    if url.startswith(("postgresql://", "postgres://")):
        raise ValueError("the PostgreSQL store is not part of this build yet; use SQLite")
    from axis.store.sqlite import SqliteStore

    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
    return SqliteStore(Path(path))


__all__ = ["Store", "open_store"]
