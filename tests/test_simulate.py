"""A small simulation against a real hub on loopback: the accounting adds up and agrees with
the hub's own statistics."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime
from datetime import time as clock_time
from pathlib import Path

import pytest

from axis.core.clock import SimulatedClock
from axis.core.edxml_model import Package
from axis.core.logchain import LogEvent
from axis.host import datadir
from axis.host.datadir import DataDir
from nodes.client import VIETNAM, NodeClient
from nodes.profile import Profile
from nodes.sim.runner import Simulation
from nodes.sim.simulate import agencies_for, clients_of, listens, own_hub, simulate
from nodes.sim.traffic import (
    ANSWER_HOURS,
    OFFICE,
    WINDOW,
    TrafficModel,
    after_office_hours,
    working_day,
)
from tests.helpers import BIN, cli, eventually, free_port, hub_stats, init_data, serving

pytestmark = pytest.mark.process  # each starts processes: hubs, commands, workers


async def test_a_small_simulation_adds_up(tmp_path: Path) -> None:
    # Seed 13 plans two of its 60 documents to be updated by their senders.
    outcome = await simulate(
        documents=60, agencies=8, seed=13, concurrency=4, report_dir=tmp_path / "report"
    )
    s, hub = outcome.summary, outcome.hub_stats
    assert s["documents_sent"] == s["documents_accepted"] == 60  # nothing refused
    assert s["updates"] == 2
    assert s["lost"] == 0 and s["duplicates"] == 0
    assert s["acknowledged"] == s["deliveries"] > 60
    # Every dialect of the field was written, by two agencies each, and all of it accepted.
    assert set(s["dialects"]) == {"standard", "vnpt", "gateway", "dotnet"}
    assert all(d["sent"] == d["accepted"] > 0 for d in s["dialects"].values())
    # The hub counted the same things (an update is an edoc too).
    assert hub["documents"] == s["documents_accepted"] + s["updates"]
    assert hub["by_status_code"]["15"] >= s["updates"]  # each recipient agreed to its update
    assert hub["deliveries"] == s["deliveries"]
    assert hub["statuses"] == s["statuses"]
    assert hub["by_state"] == {"acknowledged": s["deliveries"]}
    assert hub["agencies"] == {"registered": 8, "active": 8}
    assert sum(hub["by_status_code"].values()) == s["statuses"]

    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["summary"] == s
    assert report["agencies"]["registered"] == 8
    assert {n: d["agencies"] for n, d in report["dialects"].items()} == dict.fromkeys(
        ("dotnet", "gateway", "standard", "vnpt"), 2
    )
    assert sum(d["documents"] for d in report["per_day"]) == 60
    assert (
        report["per_day"][0]["day"] == "2019-12-09" and report["per_day"][-1]["day"] == "2020-02-10"
    )
    assert sum(a["sent"] for a in report["per_agency"]) == 60
    # As the axis counts: edocs sent (updates too) plus their deliveries.
    assert (s["sent"], s["received"]) == (60 + s["updates"], s["deliveries"])
    assert s["sent_and_received"] == s["sent"] + s["received"]
    assert report["comparison"]["this_run"].startswith(f"{s['sent_and_received']:,} documents sent")
    assert "sent + received" in report["comparison"]["convention"]
    assert report["by_status_code"] == hub["by_status_code"]
    assert (
        "1,260,000 documents sent and received (about 273,913 sent + 986,087 received)"
        " between 95 agencies in 63 days" in report["comparison"]["published"]
    )
    # The hub ran on the simulation's clock: its own statistics show the window's days, the
    # same edocs and deliveries on each as the run sent.
    days = report["by_day"]
    assert days["compared"] and days["agrees"], days["days_disagreeing"]
    assert sum(r["sent"] for r in days["rows"]) == hub["documents"]
    assert sum(r["hub_received"] for r in days["rows"]) == hub["deliveries"]
    assert len({r["day"] for r in days["rows"] if r["hub_sent"]}) > 10
    # Edocs and deliveries fall in the window; answers may come in the days after it.
    answered_later = {d["day"] for d in hub["per_day"]} - {r["day"] for r in days["rows"]}
    assert all(d["day"] > "2020-02-10" for d in hub["per_day"] if d["day"] in answered_later)
    assert not any(
        d["documents"] or d["deliveries"] for d in hub["per_day"] if d["day"] in answered_later
    )
    csv = (tmp_path / "report" / "per_day.csv").read_text().splitlines()
    assert csv[0] == "day,documents" and len(csv) == 1 + len(report["per_day"])
    page = (tmp_path / "report" / "report.html").read_text()
    assert page.count("<svg") >= 3 and "http" not in page.replace("http://www.w3", "")
    assert "Edocs per day, as the hub" in page
    assert "agree on every day" in page
    # Each latency says its clock: the hub's is the simulation's (recipients answer in office
    # hours, so it reads in minutes and hours where the run's reads in seconds).
    assert report["latency_clocks"]["latency_ms"].startswith("wall clock")
    assert report["latency_clocks"]["hub_latency_ms"].startswith("the simulation's clock")
    assert report["hub_latency_ms"] == hub["latency_ms"]
    assert report["latency_clocks"]["hub_latency_ms"] in page.replace("&#x27;", "'")


async def test_answers_come_office_hours_later_on_the_simulated_clock() -> None:
    """Recipients answer as real ones do: taking a document in within hours of reading it,
    handling it over days, in office hours; the hub on the simulation's clock records each
    status when it was due, in order after the step before it; the run ends once every
    answer is read."""
    chosen = agencies_for("seed-2020", 6)
    clock = SimulatedClock(datetime.combine(WINDOW[0], clock_time(), VIETNAM))
    async with (
        own_hub(chosen, push=False, simulated_clock=True) as site,
        clients_of(site, chosen, simulated_clock=clock, seed=5) as clients,
    ):
        run = Simulation(clients, TrafficModel(chosen, 5), 150, concurrency=4, clock=clock)
        tally = await run.run()
        entries = await site.store.log_entries(0, 100_000)
        # The run ends once the senders have read every answer: no inbox holds anything.
        left = {o: (await c.inbox())["items"] for o, c in clients.items()}
    assert tally.lost == 0 and tally.statuses > 0
    assert not any(left.values()), {o: len(items) for o, items in left.items() if items}
    steps: dict[tuple[str | None, str | None], list[tuple[datetime, str]]] = defaultdict(list)
    for e in entries:
        if e.event in (LogEvent.ACKNOWLEDGED, LogEvent.STATUS):
            at = datetime.fromisoformat(e.at).astimezone(VIETNAM)
            steps[e.package_id, e.organ_id].append(
                (at, (e.detail or "") if e.event == "status" else "")
            )
    answers = [(at, code) for chain in steps.values() for at, code in chain if code > "01"]
    assert len(answers) == tally.statuses - tally.status_codes["01"]
    for at, _ in answers:
        assert working_day(at.date()) and OFFICE[0] <= at.time() <= OFFICE[1], at
    for chain in steps.values():
        assert chain == sorted(chain, key=lambda step: step[0]), chain  # in order of time
        codes = [code for _, code in chain if code > "01"]
        assert codes == sorted(codes), chain  # 03 before 04 before 05 before 06
    # Each status at least its fewest office hours after the step before it.
    later = 0
    for chain in steps.values():
        for (before, _), (at, code) in itertools.pairwise(chain):
            if code > "01":
                assert at >= after_office_hours(before, ANSWER_HOURS[code][0]), chain
                later += at.date() > before.date()
    assert later  # some answers come on a later day than the step before them


async def test_a_package_is_verified_once_for_all_its_recipients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The simulated agencies share one process: each package delivered to several of them
    is verified once (the same bytes read the same), each other one for itself."""
    verified: list[bytes] = []
    real = NodeClient.verified

    async def counted(self: NodeClient, body: bytes, notes: str | None = None) -> Package:
        verified.append(body)
        return await real(self, body, notes)

    monkeypatch.setattr(NodeClient, "verified", counted)
    outcome = await simulate(documents=30, agencies=12, seed=4)
    summary = outcome.summary
    assert summary["lost"] == 0 and summary["deliveries"] > summary["sent"]
    assert len(verified) == len(set(verified)) == summary["sent"]  # each edoc, once


async def test_the_same_seed_sends_the_same_documents() -> None:
    first = await simulate(documents=15, agencies=5, seed=3)
    again = await simulate(documents=15, agencies=5, seed=3)
    assert first.report["per_agency"] == again.report["per_agency"]
    assert first.report["per_day"] == again.report["per_day"]
    assert first.hub_stats["by_status_code"] == again.hub_stats["by_status_code"]


def test_the_command_prints_only_json_with_json() -> None:
    done = cli("axis", "simulate", "--documents", "12", "--agencies", "4", "--json")
    summary = json.loads(done.stdout)
    assert set(summary) == {
        "documents_sent", "documents_accepted", "updates", "deliveries", "acknowledged",
        "failed", "statuses", "lost", "duplicates", "refused", "sent", "received",
        "sent_and_received", "elapsed_s", "docs_per_s", "latency_ms",
        "dialects", "faces",
    }  # fmt: skip
    assert summary["documents_accepted"] == 12 and summary["lost"] == 0


def test_a_hub_killed_again_and_again_in_a_run_loses_nothing(tmp_path: Path) -> None:
    """SIGKILL the hub three times while simulated agencies send (each time after a few more
    documents), restart it, let the run drain: everything accepted is stored and reaches
    every recipient, nobody handles a package twice, and the log verifies. One of the 14
    agencies (G07) listens for pushes, so pushes are in flight at the kills too."""
    data = tmp_path / "data"
    port, admin_port = free_port(), free_port()
    init_data(data, port)
    token = (data / "admin.token").read_text().strip()
    documents, kills = 200, (30, 80, 130)
    command = [
        str(BIN / "axis"), "simulate", "--hub", f"https://localhost:{port}", "--data", str(data),
        "--documents", str(documents), "--agencies", "14", "--seed", "5", "--json",
        "--report", str(tmp_path / "report"),
    ]  # fmt: skip
    run: subprocess.Popen[bytes] | None = None
    killed_at = []
    try:
        for threshold in kills:
            with serving(data, port, admin_port) as hub:
                if run is None:
                    run = subprocess.Popen(
                        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
                    )
                deadline = time.monotonic() + 90
                while (
                    hub_stats(admin_port, token)["documents"] < threshold
                    and time.monotonic() < deadline
                ):
                    time.sleep(0.2)
                killed_at.append(hub_stats(admin_port, token)["documents"])
                hub.kill()  # SIGKILL, mid-run
                hub.wait()
        with serving(data, port, admin_port):
            assert run is not None
            out, _ = run.communicate(timeout=240)
            stats = hub_stats(admin_port, token)
    finally:
        if run is not None and run.poll() is None:
            run.kill()
    summary = json.loads(out)
    refused = json.loads((tmp_path / "report" / "report.json").read_text())["refused"]
    assert all(t <= n < documents for t, n in zip(kills, killed_at, strict=True)), killed_at
    assert summary["documents_sent"] == summary["documents_accepted"] == documents, refused
    assert summary["lost"] == 0 and summary["duplicates"] == 0
    assert summary["acknowledged"] == summary["deliveries"]
    assert stats["documents"] == documents + summary["updates"]
    assert stats["deliveries"] == summary["deliveries"]
    assert stats["by_state"] == {"acknowledged": summary["deliveries"]}
    (listener,) = [a.organ_id for a in agencies_for("seed-2020", 14) if listens(a)]
    pushed = list(Profile.load(DataDir(data).profile(listener)).received.glob("*.xml"))
    assert pushed, "the listening agency got no pushes"
    cli("axis", "log", "verify", "--data", data)


async def test_faults_are_refused_and_counted_and_nothing_is_lost() -> None:
    outcome = await simulate(documents=250, agencies=20, seed=2020, faults=True)
    s, refused = outcome.summary, outcome.report["refused"]
    assert set(refused) == {"invalid-signature", "unknown-recipient"}
    assert s["documents_sent"] == s["documents_accepted"] + sum(refused.values())
    assert s["lost"] == 0 and s["duplicates"] == 0  # offline and slow agencies caught up
    assert outcome.hub_stats["documents"] == s["documents_accepted"] + s["updates"]


async def test_half_the_country_on_the_national_axis_api_loses_nothing() -> None:
    """--vdxp-share 0.5: about half the agencies use VNPT's SDK's wire behaviour against the
    hub's national face, the rest axis-node; documents and statuses cross between the two
    faces and every delivery is acknowledged, as the hub counts it."""
    outcome = await simulate(documents=80, agencies=10, seed=7, concurrency=4, vdxp_share=0.5)
    s, hub = outcome.summary, outcome.hub_stats
    assert s["faces"]["vdxp"] >= 2 and s["faces"]["native"] >= 2, s["faces"]
    assert s["documents_sent"] == s["documents_accepted"] == 80
    assert s["lost"] == 0 and s["duplicates"] == 0
    assert s["acknowledged"] == s["deliveries"] == hub["deliveries"]
    assert hub["statuses"] == s["statuses"]
    assert hub["by_state"] == {"acknowledged": s["deliveries"]}


def test_a_run_in_which_the_hub_refuses_documents_fails_and_says_how_many(
    tmp_path: Path,
) -> None:
    """A hub that takes one recipient per document refuses most of the scenario's: the run
    exits non-zero, naming how many and why, instead of ending "0 lost"."""
    data = tmp_path / "data"
    port, admin_port = free_port(), free_port()
    init_data(data, port)
    datadir.set_setting(DataDir(data), "max_recipients", 1)
    with serving(data, port, admin_port):
        done = subprocess.run(
            [str(BIN / "axis"), "simulate", "--hub", f"https://localhost:{port}", "--data",
             str(data), "--documents", "20", "--agencies", "6", "--seed", "3", "--json"],
            capture_output=True, text=True, timeout=240, check=False,
        )  # fmt: skip
    summary = json.loads(done.stdout)
    assert done.returncode == 1, done.stderr
    assert summary["refused"] > 0 and summary["lost"] == 0
    assert f"{summary['refused']} documents were refused by the hub" in done.stderr
    assert "schema-violation" in done.stderr


async def test_the_drain_waits_while_the_run_moves_and_ends_when_it_stalls() -> None:
    """The last answers and their reads may take longer than drain_timeout_s on a long run:
    the drain waits as long as packages are read (or acknowledged, or answered), and ends
    after drain_timeout_s in which nothing moved."""
    run = Simulation({}, TrafficModel(agencies_for("seed-2020", 4), 1), 10, drain_timeout_s=0.3)

    async def reading(reads: int) -> None:
        for _ in range(reads):
            await asyncio.sleep(0.1)
            run._taken += 1

    started = time.monotonic()
    await run._drain([asyncio.create_task(reading(12))])  # 1.2 s, four timeouts' worth
    assert time.monotonic() - started >= 1.1

    stalled = asyncio.create_task(asyncio.sleep(60))
    with pytest.raises(TimeoutError):
        await run._drain([stalled])
    await asyncio.sleep(0)
    assert stalled.cancelled()


async def test_a_stopped_run_stops_even_as_a_hint_of_new_work_comes() -> None:
    """Cancelling a run (Ctrl-C, SIGTERM) ends it whatever its agencies are doing. A
    receiver cancelled in the instant a hint of new work woke it read on for ever (Python
    3.11's asyncio.wait_for returned the hint and dropped the cancellation), and the senders
    went on sending after their run had stopped: `axis bench` stopped by SIGTERM hung."""
    chosen = agencies_for("seed-2020", 3)
    first = chosen[0].organ_id
    async with own_hub(chosen, push=False) as site, clients_of(site, chosen) as clients:
        run = Simulation(clients, TrafficModel(chosen, 1), 1000, concurrency=2, pace_per_s=2.0)
        receiver = asyncio.create_task(run._receive(first))
        try:
            await asyncio.sleep(0.5)  # its first read found nothing: it waits for a hint
            run._wake[first].set()
            receiver.cancel()  # in the same instant
            await asyncio.wait({receiver}, timeout=10)
            assert receiver.cancelled()
        finally:
            receiver.cancel()

        whole = asyncio.create_task(run.run())

        async def sending() -> bool:
            return run.tally.sent >= 2

        try:
            await eventually(sending)
            for wake in run._wake.values():
                wake.set()
            whole.cancel()
            await asyncio.wait({whole}, timeout=30)
            assert whole.cancelled()
            await asyncio.sleep(0)
            # Nothing of the run goes on: no sender, no receiver, no answering.
            assert asyncio.all_tasks() == {asyncio.current_task()}
        finally:
            whole.cancel()


REPO = Path(__file__).resolve().parent.parent
PARENT = """
import asyncio
from nodes.sim.simulate import agencies_for, own_hub

async def main():
    async with own_hub(agencies_for("seed-2020", 2), push=False) as site:
        print(site.pid, site.data.root, flush=True)
        await asyncio.sleep(120)

asyncio.run(main())
"""


async def test_a_killed_run_leaves_no_hub_behind() -> None:
    """A run killed outright (SIGKILL: no cleanup of its own) takes the hub it started with
    it: nothing is left holding the port and the data folder."""
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PARENT, stdout=asyncio.subprocess.PIPE, cwd=REPO
    )
    try:
        assert parent.stdout is not None
        line = await asyncio.wait_for(parent.stdout.readline(), 60)
        pid, folder = line.decode().split(maxsplit=1)
        hub = int(pid)
        assert Path(f"/proc/{hub}").exists()
    finally:
        parent.kill()
        await parent.wait()

    async def gone() -> bool:
        try:
            state = Path(f"/proc/{hub}/stat").read_text().split(")")[-1].split()[0]
        except OSError:
            return True
        return state == "Z"  # exited; only its parent (now init) has not reaped it yet

    await eventually(gone, timeout=30)
    # The run's own folder (its data folder's parent), which the killed run could not remove.
    shutil.rmtree(Path(folder.strip()).parent, ignore_errors=True)


def test_what_a_run_s_hub_starts_dies_with_the_hub_not_the_run() -> None:
    """A supervisor's workers inherit the environment: they are tied to the hub that starts
    them (their parent), not to the run (their grandparent), or each would stop itself at once."""
    child = (
        "import os; from axis.host import runtime;"
        "print(runtime.die_with_parent(), os.environ[runtime.PARENT_ENV] == str(os.getpid()))"
    )
    done = subprocess.run(
        [sys.executable, "-c", child],
        env={**os.environ, "AXIS_PARENT_PID": str(os.getpid())},
        cwd=REPO, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert done.stdout.split() == ["True", "True"]


def test_a_pace_spaces_events_evenly_and_saves_no_burst_for_later() -> None:
    """The half-rate stage's statuses: one every 1 / per_s seconds, however many are due at
    once; a pause earns no burst afterwards (times given, not measured)."""
    from nodes.sim.runner import Pace

    pace = Pace(per_s=100)
    assert [round(pace.wait(0.0), 6) for _ in range(4)] == [0.0, 0.01, 0.02, 0.03]
    assert round(pace.wait(0.035), 6) == 0.005  # its turn is at 0.04
    assert [round(pace.wait(5.0), 6) for _ in range(2)] == [0.0, 0.01]  # idle since: no credit
