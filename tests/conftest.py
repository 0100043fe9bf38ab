"""Shared fixtures: a real data folder, a real hub on 127.0.0.1 over real TLS, real clients.

The keys are made once per run: key generation (RSA 2048 for the development CA, the hub and
each agency) was most of what setting up a hub cost, several tenths of a second each time,
and no test is about it. Two folders are made at the start (:func:`templates`), one
initialised, one with the agencies of AGENCIES registered, and each test gets a copy of one.
Tests that are about key generation (tests/test_pki.py, axis init in the CLI tests) make
their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from axis.host import datadir
from axis.host.datadir import DataDir
from axis.store.sqlite import SqliteStore
from axis.usecases import registration
from axis.web.app import Running, running_hub
from nodes.client import NodeClient
from nodes.directory import Directory
from nodes.profile import Profile

AGENCIES = {
    "000.00.00.G22": "Văn phòng Chính phủ",
    "000.00.00.H41": "UBND tỉnh Nghệ An",
    "000.00.00.H10": "UBND tỉnh Điện Biên",
}


@dataclass(frozen=True)
class Templates:
    """The folders copied into each test: ``initialised`` (axis init), and ``staffed``
    (initialised, with the agencies of AGENCIES registered in its SQLite store)."""

    initialised: DataDir
    staffed: DataDir


async def _register_all(data: DataDir) -> None:
    store = SqliteStore(data.database)
    await store.open()
    try:
        for organ_id, name in AGENCIES.items():
            await registration.register(
                data, store, organ_id, name, hub_url="https://localhost:8443"
            )
    finally:
        await store.close()


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Templates:
    root = tmp_path_factory.mktemp("templates")
    initialised = DataDir(root / "initialised")
    datadir.init(initialised)
    staffed = DataDir(root / "staffed")
    shutil.copytree(initialised.root, staffed.root)
    # On a thread of its own: no test's event loop may be running here, whatever the plugin.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _register_all(staffed)).result()
    return Templates(initialised, staffed)


def copy_of(template: DataDir, where: Path) -> DataDir:
    """A data folder of one's own, as the template is."""
    folder = DataDir(where / "axis-data")
    shutil.copytree(template.root, folder.root)
    return folder


@pytest.fixture
def data(templates: Templates, tmp_path: Path) -> DataDir:
    """A freshly initialised data folder (no agency registered)."""
    return copy_of(templates.initialised, tmp_path)


@pytest.fixture
def staffed(templates: Templates, tmp_path: Path) -> DataDir:
    """An initialised data folder with the agencies of AGENCIES registered, no hub running."""
    return copy_of(templates.staffed, tmp_path)


@dataclass
class LiveHub:
    """A hub listening on loopback, and helpers to register agencies and open clients."""

    data: DataDir
    running: Running
    clients: dict[str, NodeClient] = field(default_factory=dict)
    directory: Directory = field(default_factory=Directory)  # the hub's, as GET /v1/agencies

    async def refresh_directory(self) -> None:
        """Read the hub's directory again and hand it to every client (as each would fetch
        it), so that synchronous builders name recipients as the hub does."""
        self.directory = Directory.from_json(await self.running.hub.directory())
        for node in self.clients.values():
            node.prime(self.directory)

    async def register(
        self,
        organ_id: str,
        name: str | None = None,
        endpoint: str | None = None,
        *,
        aliases: tuple[str, ...] = (),
        cert_pem: bytes | None = None,
    ) -> Profile:
        await registration.register(
            self.data,
            self.running.hub.store,
            organ_id,
            name or AGENCIES.get(organ_id, organ_id),
            hub_url=self.running.url,
            endpoint=endpoint,
            aliases=aliases,
            cert_pem=cert_pem,
        )
        await self.refresh_directory()
        return Profile.load(self.data.profile(organ_id))

    def client(self, organ_id: str) -> NodeClient:
        """The agency's client (one per agency, kept-alive connections, closed with the hub)."""
        node = self.clients.get(organ_id)
        if node is None:
            profile = Profile.load(self.data.profile(organ_id))
            node = self.clients[organ_id] = NodeClient(profile, hub_url=self.running.url)
            node.prime(self.directory)
        return node


@contextlib.asynccontextmanager
async def live_hub(data: DataDir, vdxp: bool = False) -> AsyncIterator[LiveHub]:
    """A hub on free loopback ports with the agencies of AGENCIES registered (``vdxp``: with
    the national axis's face on a free port too)."""
    settings = data.settings().with_overrides(port=0, admin_port=0, vdxp_port=0 if vdxp else None)
    async with running_hub(data, settings) as running:
        live = LiveHub(data, running)
        for organ_id in AGENCIES:
            if await running.hub.store.get_agency(organ_id) is None:
                await live.register(organ_id)
        await live.refresh_directory()
        try:
            yield live
        finally:
            for node in live.clients.values():
                await node.close()


@pytest.fixture
async def hub(staffed: DataDir) -> AsyncIterator[LiveHub]:
    """A running hub with the agencies of AGENCIES registered."""
    async with live_hub(staffed) as live:
        yield live


def configure(data: DataDir, **values: float) -> None:
    """Set keys of DATA/axis.toml (each must be there, as ``key = default``), and check that
    the settings now say so: a key renamed in DEFAULT_TOML must not leave a test untested."""
    for key, value in values.items():
        datadir.set_setting(data, key, value)
    settings = data.settings()
    assert all(settings.lookup(key) == value for key, value in values.items())


@pytest.fixture
async def data_small_limit(staffed: DataDir) -> AsyncIterator[LiveHub]:
    """A running hub whose axis.toml caps a body at 200 kB."""
    configure(staffed, max_body_bytes=200000)
    async with live_hub(staffed) as live:
        yield live


FAST_RETRY = """
[delivery]
retry_base_s = 0.2
retry_cap_s = 0.5
retry_max_attempts = {attempts}
lease_s = 10
push_timeout_s = 5
"""


@pytest.fixture
async def push_hub(staffed: DataDir, request: pytest.FixtureRequest) -> AsyncIterator[LiveHub]:
    """A running hub that retries pushes within a second (``max_attempts`` via indirect
    parametrization, default 50)."""
    attempts = getattr(request, "param", 50)
    text = staffed.config.read_text().split("[delivery]")[0]
    staffed.config.write_text(text + FAST_RETRY.format(attempts=attempts))
    async with live_hub(staffed) as live:
        yield live
