"""Versioned migrations: a fresh database gets them all, a database made before migrations
existed takes them without losing a row, and a database from a newer Axis is refused."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from axis.core import pki
from axis.core.logchain import GENESIS, LogEvent, link
from axis.errors import Unavailable
from axis.store.base import Agency
from axis.store.migrations import LATEST, MIGRATIONS, for_postgres, migrate_sqlite
from axis.store.sqlite import SqliteStore
from axis.usecases.verification import verify_log
from tests.helpers import SWAPPED_FINGERPRINT, postgres_schema

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


async def test_postgres_stores_package_bodies_uncompressed() -> None:
    """Schema 11: a body goes out of line as it is; pglz is not tried on it (packages are
    base64 of compressed files, and the try cost CPU on every insert)."""
    import asyncpg

    from axis.store.postgres import PostgresStore

    async with postgres_schema() as url:
        store = PostgresStore(url)
        await store.open()
        await store.close()
        conn = await asyncpg.connect(url)
        try:
            storage = await conn.fetchval(
                "SELECT attstorage FROM pg_attribute"
                " WHERE attrelid = 'packages'::regclass AND attname = 'body'"
            )
        finally:
            await conn.close()
        assert storage == b"e"  # EXTERNAL: out of line, never compressed


async def test_a_log_written_before_schema_3_still_proves_the_certificates(
    tmp_path: Path,
) -> None:
    """Before schema 3 an agency-registered entry carried the certificate's fingerprint at the
    end of its detail; the chain is never rewritten, so such entries must still verify and
    still catch a certificate swapped in the agencies table."""
    path = tmp_path / "axis.db"
    ca_key, ca_cert = pki.create_ca("Axis development CA")
    _, hub_cert = pki.issue_hub_cert(ca_key, ca_cert)
    _, cert = pki.issue_agency_cert(ca_key, ca_cert, "000.00.00.G22", "VPCP", pki.new_key("ec"))
    fingerprint = pki.fingerprint(cert)
    store = SqliteStore(path)
    await store.open()
    try:
        await store.add_agency(
            Agency("000.00.00.G22", "VPCP", pki.cert_to_pem(cert), fingerprint, datetime.now(UTC))
        )
        (entry,) = await store.log_entries(0, 10)
        assert (entry.detail, entry.cert_sha256) == ("VPCP", fingerprint)
        # The entry as a hub before schema 3 wrote it.
        legacy = link(
            GENESIS, 1, entry.at, LogEvent(entry.event), entry.organ_id, None,
            f"VPCP; certificate sha256 {fingerprint}",
        )  # fmt: skip
        with contextlib.closing(sqlite3.connect(path)) as db, db:
            db.execute(
                "UPDATE log SET detail = ?, cert_sha256 = NULL, hash = ? WHERE seq = 1",
                (legacy.detail, legacy.hash),
            )
        assert (await verify_log(store, hub_cert)).ok
        with contextlib.closing(sqlite3.connect(path)) as db, db:
            db.execute(f"UPDATE agencies SET {SWAPPED_FINGERPRINT}")
        report = await verify_log(store, hub_cert)
        assert report.problem == (
            "agency 000.00.00.G22: its certificate is not the one the log recorded"
        )
    finally:
        await store.close()


def undo_5(db: sqlite3.Connection) -> None:
    """Take a database back from schema 10 to 4 (systems, notes, marks; packages by sha256;
    the pending log; the count of directory changes; the claim's indexes)."""
    db.execute("DROP INDEX IF EXISTS deliveries_due_by_state")
    db.execute("DROP INDEX IF EXISTS deliveries_leases_by_recipient")
    db.execute("DROP TABLE IF EXISTS directory_changes")
    db.execute("DROP TABLE IF EXISTS log_pending")
    db.execute("DROP TABLE IF EXISTS daily_pending")
    db.execute("DROP INDEX IF EXISTS packages_sha256")
    db.execute("DROP INDEX IF EXISTS deliveries_pending")
    db.execute("DELETE FROM schema_migrations WHERE version >= 6")
    db.execute("DROP INDEX agencies_system")
    db.execute("DROP TABLE systems")
    for table, column in (("agencies", "system_id"), ("packages", "notes"), ("deliveries", "mark")):
        db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")


async def test_schema_5_takes_a_schema_4_database(tmp_path: Path) -> None:
    """Agencies, packages and deliveries of a database from before the national axis's face
    read as they were: no system, no notes, no mark."""
    path = tmp_path / "axis.db"
    ca_key, ca_cert = pki.create_ca("Axis development CA")
    store = SqliteStore(path)
    await store.open()
    _, cert = pki.issue_agency_cert(ca_key, ca_cert, "000.00.00.G22", "VPCP", pki.new_key("ec"))
    await store.add_agency(
        Agency(
            "000.00.00.G22", "VPCP", pki.cert_to_pem(cert), pki.fingerprint(cert), datetime.now(UTC)
        )
    )
    await store.close()
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        undo_5(db)
        db.execute("DELETE FROM schema_migrations WHERE version >= 5")
    store = SqliteStore(path)
    await store.open()
    try:
        agency = await store.get_agency("000.00.00.G22")
        assert agency is not None and agency.system_id is None and agency.has_certificate
        assert await store.list_systems() == []
    finally:
        await store.close()


async def test_schema_4_gives_every_agency_its_organ_id_as_a_code(tmp_path: Path) -> None:
    """A database from before agencies held codes: each agency holds its OrganId after the
    migration, the log proves it, and a code moved behind the hub's back is caught."""
    path = tmp_path / "axis.db"
    ca_key, ca_cert = pki.create_ca("Axis development CA")
    _, hub_cert = pki.issue_hub_cert(ca_key, ca_cert)
    store = SqliteStore(path)
    await store.open()
    for organ_id in ("000.00.00.G22", "000.00.00.H41"):
        _, cert = pki.issue_agency_cert(ca_key, ca_cert, organ_id, "VPCP", pki.new_key("ec"))
        await store.add_agency(
            Agency(
                organ_id, "VPCP", pki.cert_to_pem(cert), pki.fingerprint(cert), datetime.now(UTC)
            )
        )
    await store.close()
    with contextlib.closing(sqlite3.connect(path)) as db, db:  # back to schema 3
        undo_5(db)
        db.execute("DROP TABLE agency_codes")
        db.execute("DELETE FROM schema_migrations WHERE version >= 4")
    store = SqliteStore(path)
    await store.open()
    try:
        held = [(c.code, c.organ_id) for c in await store.agency_codes()]
        assert held == [("000.00.00.G22",) * 2, ("000.00.00.H41",) * 2]
        assert (await verify_log(store, hub_cert)).ok
        with contextlib.closing(sqlite3.connect(path)) as db, db:
            db.execute("UPDATE agency_codes SET organ_id = '000.00.00.H41' WHERE code LIKE '%G22'")
        report = await verify_log(store, hub_cert)
        assert report.problem == (
            "code 000.00.00.G22: held by 000.00.00.H41, which is not what the log recorded"
        )
    finally:
        await store.close()
