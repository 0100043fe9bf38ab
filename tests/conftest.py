"""Shared fixtures: a real data folder, a real hub on 127.0.0.1 over real TLS, real clients."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from axis.host import datadir
from axis.host.datadir import DataDir
from axis.usecases import registration
from axis.web.app import Running, running_hub
from nodes.client import NodeClient
from nodes.profile import Profile

AGENCIES = {
    "000.00.00.G22": "Văn phòng Chính phủ",
    "000.00.00.H41": "UBND tỉnh Nghệ An",
    "000.00.00.H10": "UBND tỉnh Điện Biên",
}


@pytest.fixture
def data(tmp_path: Path) -> DataDir:
    """A freshly initialised data folder."""
    folder = DataDir(tmp_path / "axis-data")
    datadir.init(folder)
    return folder


@dataclass
class LiveHub:
    """A hub listening on loopback, and helpers to register agencies and open clients."""

    data: DataDir
    running: Running
    clients: list[NodeClient] = field(default_factory=list)

    async def register(
        self, organ_id: str, name: str | None = None, endpoint: str | None = None
    ) -> Profile:
        await registration.register(
            self.data,
            self.running.hub.store,
            organ_id,
            name or AGENCIES.get(organ_id, organ_id),
            hub_url=self.running.url,
            endpoint=endpoint,
        )
        return Profile.load(self.data.profile(organ_id))

    def client(self, organ_id: str) -> NodeClient:
        node = NodeClient(Profile.load(self.data.profile(organ_id)), hub_url=self.running.url)
        self.clients.append(node)
        return node


@contextlib.asynccontextmanager
async def live_hub(data: DataDir) -> AsyncIterator[LiveHub]:
    """A hub on free loopback ports with the agencies of AGENCIES registered."""
    settings = data.settings().with_overrides(port=0, admin_port=0)
    async with running_hub(data, settings) as running:
        live = LiveHub(data, running)
        for organ_id in AGENCIES:
            await live.register(organ_id)
        try:
            yield live
        finally:
            for node in live.clients:
                await node.close()


@pytest.fixture
async def hub(data: DataDir) -> AsyncIterator[LiveHub]:
    """A running hub with the agencies of AGENCIES registered."""
    async with live_hub(data) as live:
        yield live


def configure(data: DataDir, **values: float) -> None:
    """Set keys of DATA/axis.toml (each must be there, as ``key = default``), and check that
    the settings now say so: a key renamed in DEFAULT_TOML must not leave a test untested."""
    for key, value in values.items():
        datadir.set_setting(data, key, value)
    settings = data.settings()
    assert all(settings.lookup(key) == value for key, value in values.items())


@pytest.fixture
async def data_small_limit(data: DataDir) -> AsyncIterator[LiveHub]:
    """A running hub whose axis.toml caps a body at 200 kB."""
    configure(data, max_body_bytes=200000)
    async with live_hub(data) as live:
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
async def push_hub(data: DataDir, request: pytest.FixtureRequest) -> AsyncIterator[LiveHub]:
    """A running hub that retries pushes within a second (``max_attempts`` via indirect
    parametrization, default 50)."""
    attempts = getattr(request, "param", 50)
    text = data.config.read_text().split("[delivery]")[0]
    data.config.write_text(text + FAST_RETRY.format(attempts=attempts))
    async with live_hub(data) as live:
        yield live
