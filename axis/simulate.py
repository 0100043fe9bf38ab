"""``axis simulate``: a country of simulated agencies against a hub on loopback.

It makes a fresh data folder, starts a hub in this process (real TLS on 127.0.0.1), registers
the scenario's agencies (ECDSA keys: quick to make, quick to sign), runs the traffic model
through :class:`nodes.sim.runner.Simulation`, and compares its own counts with the hub's
statistics at the end.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from axis import datadir, operations
from axis.datadir import DataDir
from axis.web.app import running_hub
from nodes.client import NodeClient
from nodes.profile import Profile
from nodes.sim import country, report
from nodes.sim.country import SimAgency
from nodes.sim.runner import Progress, Simulation
from nodes.sim.traffic import WINDOW, TrafficModel

SCENARIOS = ("seed-2020",)


@dataclass(frozen=True)
class Outcome:
    """What a run produced: the summary, the hub's own statistics, the report's files."""

    summary: dict[str, Any]
    hub_stats: dict[str, Any]
    report: dict[str, Any]
    html: Path | None


def agencies_for(scenario: str, count: int | None) -> tuple[SimAgency, ...]:
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r} (known: {', '.join(SCENARIOS)})")
    return country.first(count) if count else country.seed_2020()


async def simulate(
    *,
    scenario: str = "seed-2020",
    documents: int,
    agencies: int | None = None,
    seed: int = 2020,
    attachment_kb: float = 20,
    concurrency: int = 8,
    report_dir: Path | None = None,
    progress: Progress | None = None,
    on_ready: Callable[[int], None] | None = None,
) -> Outcome:
    """Run one simulation end to end (see the module doc)."""
    chosen = agencies_for(scenario, agencies)
    work = Path(tempfile.mkdtemp(prefix="axis-simulate-"))
    try:
        data = DataDir(work / "data")
        datadir.init(data)
        settings = data.settings().with_overrides(port=0, admin_port=0, push_workers=0)
        async with running_hub(data, settings) as running:
            issuer = datadir.load_issuer(data)
            for agency in chosen:
                registered = datadir.new_agency(
                    data, agency.organ_id, agency.name, running.url, key_kind="ec", issuer=issuer
                )
                await running.hub.store.add_agency(registered)
            if on_ready:
                on_ready(len(chosen))
            clients = {
                a.organ_id: NodeClient(Profile.load(data.profile(a.organ_id))) for a in chosen
            }
            try:
                model = TrafficModel(chosen, seed, attachment_kb)
                run = Simulation(clients, model, documents, concurrency, progress=progress)
                tally = await run.run()
            finally:
                for client in clients.values():
                    await client.close()
            hub_stats = await operations.statistics(running.hub.store)
        summary = run.summary(failed=hub_stats["by_state"].get("failed", 0))
        names = {a.organ_id: a.name for a in chosen}
        built = report.build(
            summary,
            dict(tally.per_day),
            [(o, names[o], tally.sent_by[o], tally.received_by[o]) for o in names],
            hub_stats,
            {"name": scenario, "seed": seed, "documents": documents, "start": WINDOW[0],
             "end": WINDOW[1], "refused": dict(tally.refused)},
        )  # fmt: skip
        html = report.write(built, report_dir) if report_dir else None
        return Outcome(summary, hub_stats, built, html)
    finally:
        shutil.rmtree(work, ignore_errors=True)
