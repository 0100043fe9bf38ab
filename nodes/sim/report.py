"""The run's report: ``report.json``, a per-day CSV and ``report.html`` with charts, readable
offline (everything inline, no outside resource)."""

from __future__ import annotations

import csv
import html
import json
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from nodes.sim.traffic import (
    PUBLISHED_AGENCIES,
    PUBLISHED_DOCUMENTS,
    RECEIPTS_PER_DOCUMENT,
    TET_HOLIDAY,
    days,
)

#: How the axis counts, and so this report: a document sent to four agencies counts five, one
#: sent and four received (the Government Office's reports of the axis do the same).
CONVENTION = "sent + received, as the national axis counts (a document sent to 4 agencies: 5)"


def build(
    summary: dict[str, Any],
    per_day: dict[str, int],
    agencies: Sequence[tuple[str, str, int, int]],
    hub_stats: dict[str, Any] | None,
    scenario: dict[str, Any],
    edocs_per_day: tuple[Mapping[str, int], Mapping[str, int]] = ({}, {}),
) -> dict[str, Any]:
    """report.json: the summary plus per day, per agency, per state and code, latency;
    ``edocs_per_day``: the edocs accepted and their deliveries per day, to set beside the
    hub's own statistics."""
    window = [d.isoformat() for d in days(scenario["start"], scenario["end"])]
    span = (scenario["end"] - scenario["start"]).days  # 9 Dec 2019 to 10 Feb 2020: 63 days
    registered = len(agencies)
    published_sent = round(PUBLISHED_DOCUMENTS / (1 + RECEIPTS_PER_DOCUMENT))
    return {
        "scenario": {k: (v.isoformat() if isinstance(v, date) else v) for k, v in scenario.items()},
        "summary": summary,
        "per_day": [{"day": d, "documents": per_day.get(d, 0)} for d in window],
        "by_day": by_day(
            window, *edocs_per_day, hub_stats, own_hub=scenario.get("hub") == "in-process"
        ),
        "per_agency": [
            {"organ_id": o, "name": n, "sent": s, "received": r} for o, n, s, r in agencies
        ],
        "by_state": (hub_stats or {}).get("by_state", {}),
        "by_status_code": (hub_stats or {}).get("by_status_code", {}),
        "latency_ms": summary["latency_ms"],
        "hub_latency_ms": (hub_stats or {}).get("latency_ms"),
        "latency_clocks": latency_clocks(own_hub=scenario.get("hub") == "in-process"),
        "agencies": {"registered": registered},
        "comparison": {
            "convention": CONVENTION,
            "published": f"{PUBLISHED_DOCUMENTS:,} documents sent and received (about"
            f" {published_sent:,} sent + {PUBLISHED_DOCUMENTS - published_sent:,} received)"
            f" between {PUBLISHED_AGENCIES} agencies in {span} days",
            "this_run": f"{summary['sent_and_received']:,} documents sent and received"
            f" ({summary['sent']:,} sent + {summary['received']:,} received) between"
            f" {registered} agencies in {span} days",
            "share_of_published": round(summary["sent_and_received"] / PUBLISHED_DOCUMENTS, 6),
        },
    }


def latency_clocks(own_hub: bool) -> dict[str, str]:
    """What clock each latency of the report is on. The run's is the wall clock; the hub's
    is the simulation's when this run started the hub (it recorded the window's times, and
    recipients answer in office hours: minutes to a day), else the hub's own."""
    return {
        "latency_ms": "wall clock: from the hub's answer to the sender to the recipient's"
        " confirmed acknowledgement, as the run's agencies saw it",
        "hub_latency_ms": (
            "the simulation's clock: from receipt to acknowledgement as the hub recorded"
            " them (this run's hub kept the window's times)"
            if own_hub
            else "the hub's own clock: from receipt to acknowledgement as it recorded them"
        ),
    }


def by_day(
    window: Sequence[str],
    sent: Mapping[str, int],
    received: Mapping[str, int],
    hub_stats: dict[str, Any] | None,
    own_hub: bool,
) -> dict[str, Any]:
    """The run's edocs and deliveries day by day beside the hub's own statistics for those
    days. The hub this run started records the simulation's times (:mod:`axis.core.clock`),
    so the two must agree on every day; a hub someone else runs counts its own days."""
    hub_days = {row["day"]: row for row in (hub_stats or {}).get("per_day", [])}
    rows = [
        {
            "day": day,
            "sent": sent.get(day, 0),
            "received": received.get(day, 0),
            "hub_sent": hub_days.get(day, {}).get("documents", 0),
            "hub_received": hub_days.get(day, {}).get("deliveries", 0),
        }
        for day in window
    ]
    # Answers to the window's last documents come in the days after it: only edocs and
    # deliveries must fall in it.
    outside = sorted(
        day
        for day, row in hub_days.items()
        if day not in window and (row.get("documents") or row.get("deliveries"))
    )
    disagreeing = [
        r["day"] for r in rows if (r["sent"], r["received"]) != (r["hub_sent"], r["hub_received"])
    ]
    return {
        "compared": own_hub,
        "agrees": own_hub and not disagreeing and not outside,
        "days_disagreeing": disagreeing if own_hub else [],
        "hub_days_outside_window": outside if own_hub else [],
        "rows": rows,
    }


def write(report: dict[str, Any], folder: Path) -> Path:
    """Write the three files; returns the HTML report's path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(
        json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    with open(folder / "per_day.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["day", "documents"])
        for row in report["per_day"]:
            writer.writerow([row["day"], row["documents"]])
    page = folder / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    return page


def _bars(
    rows: Sequence[tuple[str, int]], width: int, height: int, highlight: set[str] | None = None
) -> str:
    """A vertical bar chart as inline SVG."""
    if not rows:
        return "<p>No data.</p>"
    left, bottom, top = 56, 40, 10
    peak = max(1, max(v for _, v in rows))
    slot = (width - left - 10) / len(rows)
    bar = max(1.0, min(28.0, slot * 0.75))
    parts = [f'<svg viewBox="0 0 {width} {height}" width="100%" role="img">']
    for tick in (0, 0.5, 1):
        value = round(peak * tick)
        y = top + (height - top - bottom) * (1 - value / peak)
        parts.append(
            f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
        )
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{value:,}</text>')
    every = max(1, len(rows) // 12)
    for i, (label, value) in enumerate(rows):
        x = left + i * slot + (slot - bar) / 2
        y = top + (height - top - bottom) * (1 - value / peak)
        kind = "hot" if highlight and label in highlight else "bar"
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{height - bottom - y:.1f}"'
            f' class="{kind}"><title>{html.escape(label)}: {value:,}</title></rect>'
        )
        if i % every == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{height - bottom + 16}" text-anchor="middle">'
                f"{html.escape(label[-5:])}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def render_html(report: dict[str, Any]) -> str:
    s = report["summary"]
    tet = {d.isoformat() for d in days(TET_HOLIDAY[0], TET_HOLIDAY[1])}
    per_day = [(r["day"], r["documents"]) for r in report["per_day"]]
    top = sorted(report["per_agency"], key=lambda a: a["sent"], reverse=True)[:15]
    cards = [
        ("documents accepted", s["documents_accepted"]), ("deliveries", s["deliveries"]),
        ("acknowledged", s["acknowledged"]), ("statuses", s["statuses"]), ("lost", s["lost"]),
        ("duplicates", s["duplicates"]), ("documents/s", s["docs_per_s"]),
        ("elapsed s", s["elapsed_s"]),
    ]  # fmt: skip
    card_html = "".join(
        f'<div class="card"><b>{html.escape(_fmt(v))}</b><span>{html.escape(k)}</span></div>'
        for k, v in cards
    )
    comparison = report["comparison"]
    return f"""<!doctype html><html lang="vi"><head><meta charset="utf-8">
<title>Axis simulation report</title>
<style>
body{{font:14px/1.5 system-ui,sans-serif;color:#1d2733;max-width:1100px;margin:24px auto;
padding:0 16px}}
h1{{font-size:22px;margin-bottom:4px}} h2{{font-size:16px;margin-top:28px}}
.lead{{color:#5b6b7b}} .cards{{display:grid;grid-template-columns:repeat(4,1fr);gap:10px}}
.card{{border:1px solid #dde3e9;border-radius:8px;padding:10px}}
.card b{{display:block;font-size:22px}}
.card span{{color:#5b6b7b;font-size:12px}} table{{border-collapse:collapse;width:100%}}
td,th{{text-align:left;padding:4px 8px;border-bottom:1px solid #dde3e9}}
svg text{{font:11px system-ui;fill:#5b6b7b}} .grid{{stroke:#dde3e9}} .bar{{fill:#1f5fa8}}
.hot{{fill:#b3261e}} .cmp{{background:#f4f6f8;border-left:4px solid #b3261e;padding:8px 12px}}
</style></head><body>
<h1>Axis simulation: {html.escape(report["scenario"]["name"])}</h1>
<p class="lead">Seed {report["scenario"]["seed"]}, {report["scenario"]["start"]} to
{report["scenario"]["end"]} on the simulated clock, {report["agencies"]["registered"]} agencies.</p>
<p class="cmp">Published: {html.escape(comparison["published"])}.<br>
This run: {html.escape(comparison["this_run"])}
({comparison["share_of_published"]:.2%} of the published volume).</p>
<div class="cards">{card_html}</div>
<h2>Documents per day (Tết holiday in red)</h2>{_bars(per_day, 1000, 260, tet)}
{_hub_days(report)}
<h2>Top senders</h2>{_bars([(a["organ_id"], a["sent"]) for a in top], 1000, 220)}
{
        _table(
            ["OrganId", "name", "sent", "received"],
            [(a["organ_id"], a["name"], a["sent"], a["received"]) for a in top],
        )
    }
<h2>Deliveries by state (from the hub)</h2>
{_table(["state", "deliveries"], sorted(report["by_state"].items()))}
<h2>Statuses by code</h2>{_table(["code", "statuses"], sorted(report["by_status_code"].items()))}
<h2>Latency, receipt to acknowledgement</h2>
{_table(["measured", "p50", "p95", "p99"], _latency_rows(report))}
<h2>What the agencies' software wrote (dialects of edXML)</h2>
{_table(["dialect", "agencies", "packages sent", "accepted"], _dialect_rows(report))}
<p class="lead">{s.get("updates", 0):,} documents were updated once by their sender
(BussinessDocumentInfo saying what changed).</p>
</body></html>
"""


def _latency_rows(report: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The run's latency and the hub's, each saying its clock (the hub's may be the
    simulation's: hours where the run's are seconds)."""
    clocks = report.get("latency_clocks") or latency_clocks(own_hub=False)
    rows: list[tuple[Any, ...]] = []
    for key in ("latency_ms", "hub_latency_ms"):
        values = report.get(key)
        if values:
            p50, p95, p99 = (values.get(q) for q in ("p50", "p95", "p99"))
            rows.append((clocks[key], *(_duration(v) for v in (p50, p95, p99))))
    return rows


def _duration(ms: float | None) -> str:
    """A latency for people: ms, s, min or h as fits."""
    if ms is None:
        return "–"
    for unit, size in (("h", 3_600_000), ("min", 60_000), ("s", 1000)):
        if ms >= size:
            return f"{ms / size:.1f} {unit}"
    return f"{ms:.0f} ms"


def _hub_days(report: dict[str, Any]) -> str:
    """The hub's own edocs per day beside the run's, when this run started the hub (it
    recorded the simulation's times); nothing for a hub someone else runs."""
    days_ = report.get("by_day") or {}
    if not days_.get("compared"):
        return ""
    rows = days_["rows"]
    verdict = (
        "agree on every day"
        if days_["agrees"]
        else f"disagree on {len(days_['days_disagreeing'])} days:"
        f" {', '.join(days_['days_disagreeing'][:10])}"
    )
    return (
        "<h2>Edocs per day, as the hub's own statistics count them</h2>"
        f"<p class=\"lead\">The hub ran on the simulation's clock. Its counts and the run's"
        f" {html.escape(verdict)} (edocs sent: {sum(r['hub_sent'] for r in rows):,};"
        f" deliveries: {sum(r['hub_received'] for r in rows):,}).</p>"
        + _bars([(r["day"], r["hub_sent"]) for r in rows], 1000, 200)
    )


def _dialect_rows(report: dict[str, Any]) -> list[tuple[str, int, int, int]]:
    return [
        (name, d.get("agencies", 0), d["sent"], d["accepted"])
        for name, d in sorted((report.get("dialects") or {}).items())
    ]
