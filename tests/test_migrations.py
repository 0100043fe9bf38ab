"""Versioned migrations: a fresh database gets them all, a database made before migrations
existed takes them without losing a row, and a database from a newer Axis is refused."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import pytest

from axis.errors import Unavailable
from axis.store.migrations import LATEST, MIGRATIONS, for_postgres, migrate_sqlite
from axis.store.sqlite import SqliteStore
from tests.helpers import postgres_schema

# The schema an Axis before migrations created (CREATE ... IF NOT EXISTS at every start).
PRE_MIGRATION_TABLES = MIGRATIONS[0].sql


def versions(path: Path) -> list[int]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return [v for (v,) in db.execute("SELECT version FROM schema_migrations ORDER BY 1")]


async def test_a_fresh_database_gets_every_migration(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "axis.db")
    await store.open()
    await store.close()
    assert versions(tmp_path / "axis.db") == [m.version for m in MIGRATIONS]
    await store.open()  # again: nothing left to apply, nothing fails
    await store.close()
    assert versions(tmp_path / "axis.db") == list(range(1, LATEST + 1))


async def test_a_database_from_before_migrations_is_brought_up_to_date(tmp_path: Path) -> None:
    path = tmp_path / "axis.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executescript(PRE_MIGRATION_TABLES)
        db.execute(
            "INSERT INTO daily (day, metric, key, n) VALUES ('2020-01-06', 'documents', '', 7)"
        )
        db.commit()
    store = SqliteStore(path)
    await store.open()
    try:
        assert await store.counter_total("documents") == 7
    finally:
        await store.close()
    assert versions(path) == list(range(1, LATEST + 1))
    with contextlib.closing(sqlite3.connect(path)) as db:
        indexes = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "deliveries_leased" in indexes


async def test_a_database_from_a_newer_axis_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "axis.db"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        migrate_sqlite(db)
        db.execute(
            "INSERT INTO schema_migrations VALUES (?, 'from the future', 'x')", (LATEST + 1,)
        )
    store = SqliteStore(path)
    with pytest.raises(Unavailable, match=f"schema version {LATEST + 1}, newer"):
        await store.open()


def test_the_postgres_dialect() -> None:
    sql = for_postgres(MIGRATIONS[0].sql)
    assert "BLOB" not in sql and "AUTOINCREMENT" not in sql
    assert "seq             BIGSERIAL PRIMARY KEY" in sql
    assert "n      BIGINT NOT NULL" in sql


async def test_postgres_gets_every_migration_once_even_opened_twice_at_once() -> None:
    """Two workers starting together: one migrates, the other waits for it, then finds
    nothing to do (the migration lock)."""
    import asyncpg

    from axis.store.postgres import PostgresStore

    async with postgres_schema() as url:
        stores = [PostgresStore(url), PostgresStore(url)]
        await asyncio.gather(*(s.open() for s in stores))
        for store in stores:
            await store.close()
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")
        finally:
            await conn.close()
        assert [r[0] for r in rows] == list(range(1, LATEST + 1))
