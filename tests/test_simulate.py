"""A small simulation against a real hub on loopback: the accounting adds up and agrees with
the hub's own statistics."""

from __future__ import annotations

import json
from pathlib import Path

from axis.simulate import simulate
from tests.helpers import cli


async def test_a_small_simulation_adds_up(tmp_path: Path) -> None:
    outcome = await simulate(
        documents=60, agencies=8, seed=11, concurrency=4, report_dir=tmp_path / "report"
    )
    s, hub = outcome.summary, outcome.hub_stats
    assert s["documents_sent"] == s["documents_accepted"] == 60  # nothing refused
    assert s["lost"] == 0 and s["duplicates"] == 0
    assert s["acknowledged"] == s["deliveries"] > 60
    # The hub counted the same things.
    assert hub["documents"] == s["documents_accepted"]
    assert hub["deliveries"] == s["deliveries"]
    assert hub["statuses"] == s["statuses"]
    assert hub["by_state"] == {"acknowledged": s["deliveries"]}
    assert hub["agencies"] == {"registered": 8, "active": 8}
    assert sum(hub["by_status_code"].values()) == s["statuses"]

    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["summary"] == s
    assert report["agencies"]["registered"] == 8
    assert sum(d["documents"] for d in report["per_day"]) == 60
    assert (
        report["per_day"][0]["day"] == "2019-12-09" and report["per_day"][-1]["day"] == "2020-02-10"
    )
    assert sum(a["sent"] for a in report["per_agency"]) == 60
    assert report["by_status_code"] == hub["by_status_code"]
    assert (
        "1,260,000 documents exchanged between 95 agencies in 63 days"
        in (report["comparison"]["published"])
    )
    csv = (tmp_path / "report" / "per_day.csv").read_text().splitlines()
    assert csv[0] == "day,documents" and len(csv) == 1 + len(report["per_day"])
    page = (tmp_path / "report" / "report.html").read_text()
    assert page.count("<svg") >= 2 and "http" not in page.replace("http://www.w3", "")


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
        "documents_sent", "documents_accepted", "deliveries", "acknowledged", "failed",
        "statuses", "lost", "duplicates", "elapsed_s", "docs_per_s", "latency_ms",
    }  # fmt: skip
    assert summary["documents_accepted"] == 12 and summary["lost"] == 0
