"""The attack corpus (tests/data/attacks/) against a live hub over TLS.

For every case: the right 4xx problem+json, nothing stored (no package, delivery or log entry),
no inbox touched, and the hub still healthy afterwards. The fixed cases are files listed in
``cases.toml``; the cases that need this run's keys are generators below.
"""

from __future__ import annotations

import contextlib
import sqlite3
import tomllib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from nodes.client import HubError
from tests.conftest import AGENCIES, LiveHub

CORPUS = Path(__file__).parent / "data" / "attacks"
SENDER = "000.00.00.G22"
PROBLEM = "urn:axis:problem:"


def fixed_cases() -> list[dict[str, Any]]:
    with (CORPUS / "cases.toml").open("rb") as f:
        return list(tomllib.load(f)["case"])


@dataclass(frozen=True)
class HubState:
    """What an attack must leave as it was."""

    packages: int
    deliveries: int
    log_head: int
    inboxes: dict[str, list[str]]


async def state_of(hub: LiveHub) -> HubState:
    with contextlib.closing(sqlite3.connect(hub.data.database)) as db:
        packages, deliveries, head = db.execute(
            "SELECT (SELECT count(*) FROM packages), (SELECT count(*) FROM deliveries),"
            " (SELECT coalesce(max(seq), 0) FROM log)"
        ).fetchone()
    inboxes = {}
    for organ_id in AGENCIES:
        items = (await hub.client(organ_id).inbox())["items"]
        inboxes[organ_id] = [item["id"] for item in items]
    return HubState(packages, deliveries, head, inboxes)


async def healthy(hub: LiveHub) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{hub.running.admin_port}/healthz") as answer:
            assert answer.status == 200, "the hub is not healthy after the attack"
    await hub.client(SENDER).inbox()  # and it still serves the node API


async def refused(
    hub: LiveHub, attack: Callable[[], Awaitable[Any]], problem: str, status: int
) -> HubError:
    """Run ``attack`` and check everything the corpus promises about it."""
    before = await state_of(hub)
    with pytest.raises(HubError) as caught:
        await attack()
    error = caught.value
    assert (error.status, error.type) == (status, PROBLEM + problem), error.problem
    assert error.problem.get("title") and error.problem.get("detail"), "a problem+json body"
    assert await state_of(hub) == before, "the attack stored or changed something"
    await healthy(hub)
    return error


@pytest.mark.parametrize("case", fixed_cases(), ids=lambda c: f"{c['file']}:{c['problem']}")
async def test_fixed_case(hub: LiveHub, case: dict[str, Any]) -> None:
    body = (CORPUS / case["file"]).read_bytes()
    sender = hub.client(SENDER)
    headers = {"Content-Type": case.get("content_type", "application/xml")}
    await refused(
        hub,
        lambda: sender._request("POST", "/v1/packages", data=body, headers=headers),
        case["problem"],
        case["status"],
    )


def test_every_corpus_file_is_a_case() -> None:
    listed = {c["file"] for c in fixed_cases()}
    on_disk = {p.name for p in CORPUS.iterdir() if p.name != "cases.toml"}
    assert on_disk == listed
