"""A time-warped replay: the simulator's own hub records the times its agencies' requests
say (axis.core.clock), and no other hub can be made to."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from axis.core.clock import SimulatedClock, parse_instant
from axis.errors import AxisError
from axis.host import datadir
from axis.host.datadir import DataDir
from axis.web.app import running_hub
from nodes.client import NodeClient
from nodes.profile import Profile
from tests.helpers import assert_problem, cli

ICT = timezone(timedelta(hours=7))
G22, H41 = "000.00.00.G22", "000.00.00.H41"


def test_the_clock_says_what_the_request_says_and_never_goes_back() -> None:
    clock = SimulatedClock()
    assert abs(clock() - datetime.now(UTC)) < timedelta(seconds=5)  # none said anything yet
    first, later = datetime(2019, 12, 9, 1, tzinfo=UTC), datetime(2019, 12, 10, 2, tzinfo=UTC)
    with clock.at(later):
        assert clock() == later
        with clock.at(first):  # a request that says an earlier time records that time
            assert clock() == first
        assert clock() == later
    assert clock() == later  # what no request carries: the latest any said
    with clock.at(first):
        pass
    assert clock() == later


async def test_concurrent_requests_each_keep_their_own_time() -> None:
    clock = SimulatedClock(datetime(2019, 12, 9, tzinfo=UTC))
    seen: dict[int, datetime] = {}

    async def request(day: int) -> None:
        with clock.at(datetime(2019, 12, day, tzinfo=UTC)):
            await asyncio.sleep(0.01 * (20 - day))
            seen[day] = clock()

    await asyncio.gather(*(request(day) for day in range(10, 15)))
    assert seen == {day: datetime(2019, 12, day, tzinfo=UTC) for day in range(10, 15)}


@pytest.mark.parametrize("raw", ["2019-12-09T08:00:00", "tomorrow", "9" * 80, ""])
def test_an_instant_needs_its_offset(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_instant(raw)


def test_parse_instant_is_utc() -> None:
    assert parse_instant("2019-12-09T08:15:00+07:00") == datetime(2019, 12, 9, 1, 15, tzinfo=UTC)


@pytest.mark.process  # runs axis serve
def test_only_the_simulators_own_hub_runs_on_its_clock(tmp_path: Path) -> None:
    data = tmp_path / "data"
    cli("axis", "init", "--data", data)
    refused = cli("axis", "serve", "--data", data, "--simulated-clock", check=False)
    assert refused.returncode != 0 and "not made by axis simulate" in refused.stderr
    datadir.mark_simulation(DataDir(data))
    outside = cli(
        "axis", "serve", "--data", data, "--simulated-clock", "--host", "0.0.0.0", check=False
    )
    assert outside.returncode != 0 and "loopback only" in outside.stderr


async def test_the_hub_records_the_simulated_time(staffed: DataDir) -> None:
    datadir.mark_simulation(staffed)
    settings = staffed.settings().with_overrides(port=0, admin_port=0)
    async with running_hub(staffed, settings, simulated_clock=True) as running:
        day = datetime(2020, 1, 22, 9, 30, tzinfo=ICT)
        sender = NodeClient(
            Profile.load(staffed.profile(G22)), hub_url=running.url, simulated_clock=lambda: day
        )
        try:
            answer = (await sender.send([H41], "Trước Tết")).answer
            assert parse_instant(answer["received_at"]) == day.astimezone(UTC)
            stats = await running.hub.store.counter_rows(None, None)
            assert {row[0] for row in stats} == {"2020-01-22"}
            bad = NodeClient(
                Profile.load(staffed.profile(H41)),
                hub_url=running.url,
                simulated_clock=lambda: datetime(2020, 1, 22),  # no offset
            )
            try:
                with pytest.raises(AxisError) as exc:
                    await bad.inbox()
                assert_problem(exc, "schema-violation", 422)
            finally:
                await bad.close()
        finally:
            await sender.close()


async def test_any_other_hub_ignores_the_header(staffed: DataDir) -> None:
    settings = staffed.settings().with_overrides(port=0, admin_port=0)
    async with running_hub(staffed, settings) as running:
        sender = NodeClient(
            Profile.load(staffed.profile(G22)),
            hub_url=running.url,
            simulated_clock=lambda: datetime(2019, 12, 9, 8, tzinfo=ICT),
        )
        try:
            answer = (await sender.send([H41], "Giờ thật")).answer
        finally:
            await sender.close()
        received = parse_instant(answer["received_at"])
        assert abs(received - datetime.now(UTC)) < timedelta(minutes=1)
