"""The directory kept in memory (axis.usecases.directory): answered from memory between two
changes, and every change seen, whoever made it: this process, another worker, or the
command line on the same database (the real SQLite file and the real PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from axis.store import open_store
from axis.store.base import Agency, Store, System
from axis.store.sqlite import SqliteStore
from axis.usecases.directory import Directory
from tests.helpers import postgres_schema
from tests.test_store import G22, T0, agency

pytestmark = pytest.mark.asyncio


@pytest.fixture(params=["sqlite", "postgres"])
async def two(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Store, Store]]:
    """Two stores on one database: the hub's, and another process's (a worker, the CLI)."""

    async def opened(url: str) -> AsyncIterator[tuple[Store, Store]]:
        hub, other = open_store(url), open_store(url)
        await hub.open()
        await other.open()
        try:
            yield hub, other
        finally:
            await other.close()
            await hub.close()

    if request.param == "sqlite":
        async for pair in opened(str(tmp_path / "axis.db")):
            yield pair
        return
    async with postgres_schema() as url:
        async for pair in opened(url):
            yield pair


async def _primed(registrar: Store, store: Store) -> Directory:
    """G22 registered through ``registrar``; a directory on ``store`` that has read it."""
    await registrar.add_agency(agency(G22))
    directory = Directory(store)
    await directory.refresh()
    assert await directory.agency_by_fingerprint(agency(G22).fingerprint) == agency(G22)
    return directory


async def test_answers_come_from_memory_until_the_directory_changes(
    two: tuple[Store, Store],
) -> None:
    directory = await _primed(*reversed(two))
    g22 = agency(G22)
    assert await directory.code_holder("XYZ") is None
    read = directory.lookups
    for _ in range(3):
        await directory.refresh()  # nothing changed: the answers stay
        assert await directory.agency_by_fingerprint(g22.fingerprint) == g22
        assert await directory.code_holder("XYZ") is None
    assert directory.lookups == read and directory.hits == 6


@pytest.mark.parametrize(
    "change",
    ["revoke", "add-code", "close-code", "add-agency", "add-system"],
)
async def test_a_change_by_another_process_is_seen_at_the_next_refresh(
    two: tuple[Store, Store], change: str
) -> None:
    store, other = two
    directory = await _primed(other, store)
    g22 = agency(G22)
    assert await directory.code_holder("000.00.00.X99") is None
    assert [c.code for c in await directory.agency_codes(G22)] == [G22]
    match change:
        case "revoke":
            await other.set_agency_active(G22, False)
        case "add-code":
            await other.add_code(G22, "000.00.00.X99")
        case "close-code":
            await other.close_code("000.00.00.X99", G22)
        case "add-agency":
            await other.add_agency(agency("000.00.00.X99", 3))
        case "add-system":
            await other.add_system(System("sys-1", "Hệ thống", b"sealed", T0))
    await directory.refresh()
    agency_now = await directory.agency_by_fingerprint(g22.fingerprint)
    holder = await directory.code_holder("000.00.00.X99")
    codes = [c.code for c in await directory.agency_codes(G22)]
    assert agency_now == (replace(g22, active=False) if change == "revoke" else g22)
    if change == "add-code":
        assert holder is not None and holder[1] == g22 and codes == [G22, "000.00.00.X99"]
    elif change == "close-code":
        assert holder is not None and holder[0].successor == G22 and holder[1] is None
    elif change == "add-agency":
        assert holder is not None and holder[1] == agency("000.00.00.X99", 3)
    else:
        assert holder is None and codes == [G22]


async def test_this_process_s_own_change_is_seen_before_its_call_returns(
    two: tuple[Store, Store],
) -> None:
    store, _ = two
    directory = await _primed(store, store)
    fingerprint = agency(G22).fingerprint
    await store.set_agency_active(G22, False)
    found = await directory.agency_by_fingerprint(fingerprint)  # no refresh in between
    assert found is not None and not found.active


class _SlowStore(SqliteStore):
    """The real SQLite store whose fingerprint lookup waits at a gate after reading."""

    gate: asyncio.Event

    async def agency_by_fingerprint(self, fingerprint: str) -> Agency | None:
        found = await super().agency_by_fingerprint(fingerprint)
        await self.gate.wait()
        return found


async def test_an_answer_read_before_a_change_is_not_kept_after_it(tmp_path: Path) -> None:
    """A lookup that awaited while a refresh saw a change answers its caller, but is not kept
    under the new count (it may predate the change)."""
    store = _SlowStore(tmp_path / "axis.db")
    store.gate = asyncio.Event()
    other = SqliteStore(tmp_path / "axis.db")
    await store.open()
    await other.open()
    try:
        await other.add_agency(agency(G22))
        directory = Directory(store)
        await directory.refresh()
        fingerprint = agency(G22).fingerprint
        slow = asyncio.create_task(directory.agency_by_fingerprint(fingerprint))
        await asyncio.sleep(0.05)  # it has read the agency, still active, and waits
        await other.set_agency_active(G22, False)
        await directory.refresh()
        store.gate.set()
        assert await slow == agency(G22)  # what it read
        found = await directory.agency_by_fingerprint(fingerprint)
        assert found is not None and not found.active  # read again, not the stale answer
    finally:
        await other.close()
        await store.close()
