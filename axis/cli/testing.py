"""``axis simulate`` and ``axis bench``: a country of simulated agencies against a hub, and the
benchmark. Both live beside the simulated agencies (:mod:`nodes.sim`), loaded only when run."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from axis.cli.common import data_folder, data_option, err, fail
from axis.host import runtime
from axis.host.config import VERIFIERS


@click.command()
@click.option(
    "--scenario", type=click.Choice(["seed-2020"]), default="seed-2020", show_default=True
)
@click.option("--agencies", type=click.IntRange(2, 95), default=None, help="Fewer agencies.")
@click.option(
    "--events",
    type=click.IntRange(2),
    default=None,
    help="The run's size as the axis counts it, documents sent plus received (default the"
    " published 1,260,000: the whole window, about 274,000 documents).",
)
@click.option(
    "--documents",
    type=click.IntRange(1),
    default=None,
    help="The run's size in documents sent instead (each about 3.6 recipients).",
)
@click.option("--seed", type=int, default=2020, show_default=True, help="Same seed, same run.")
@click.option("--attachment-kb", type=click.FloatRange(0.5), default=20.0, show_default=True)
@click.option("--concurrency", type=click.IntRange(1, 256), default=8, show_default=True)
@click.option(
    "--report", "report_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Write report.json, per_day.csv and report.html there.",
)  # fmt: skip
@click.option(
    "--faults",
    is_flag=True,
    help="Agencies offline for a while, slow agencies, 2 % broken packages.",
)
@click.option(
    "--hub",
    "hub_url",
    default=None,
    help="Drive a running hub (https://…) whose data folder --data names, instead of one here.",
)
@click.option(
    "--dialects",
    default="standard,vnpt,gateway,dotnet",
    show_default=True,
    help="The field's dialects of edXML the agencies write, with weights: e.g."
    " 'standard:2,vnpt:1,dotnet:1' (see axis/core/edxml_dialects.py).",
)
@click.option(
    "--vdxp-share",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="That share of the agencies use the national axis's own API (VNPT's SDK) instead of"
    " axis-node (the hub serves it: [vdxp]).",
)
@data_option
@click.option("--json", "as_json", is_flag=True, help="Print only the summary JSON on stdout.")
def simulate(
    scenario: str,
    agencies: int | None,
    events: int | None,
    documents: int | None,
    seed: int,
    attachment_kb: float,
    concurrency: int,
    report_dir: Path | None,
    faults: bool,
    hub_url: str | None,
    dialects: str,
    vdxp_share: float,
    data_dir: Path | None,
    as_json: bool,
) -> None:
    """Run simulated agencies against a hub on loopback and report what they exchanged,
    counted as the national axis counts: documents sent plus received."""
    from axis.core.edxml_dialects import parse_mix
    from nodes.sim.traffic import PUBLISHED_DOCUMENTS, documents_for

    if events is not None and documents is not None:
        raise click.BadParameter("give --events or --documents, not both")
    if documents is None:
        documents = documents_for(events or PUBLISHED_DOCUMENTS)

    try:
        mix = parse_mix(dialects)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--dialects") from exc
    data = data_folder(data_dir) if hub_url else None
    from nodes.sim.simulate import simulate as run_simulation

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=err, transient=as_json,
    ) as bar:  # fmt: skip
        sending = bar.add_task("documents sent", total=documents)
        acking = bar.add_task("deliveries acknowledged", total=0)

        def progress(what: str, n: int) -> None:
            if what == "deliveries":  # the hub accepted a document: its deliveries are due
                bar.update(acking, total=(bar.tasks[acking].total or 0) + n)
            else:
                bar.advance(sending if what == "sent" else acking, n)

        def ready(count: int) -> None:
            where = hub_url or "a hub on loopback"
            err.print(f"{count} agencies registered at {where}; sending {documents:,} documents")

        outcome = runtime.run(
            run_simulation(
                scenario=scenario, documents=documents, agencies=agencies, seed=seed,
                attachment_kb=attachment_kb, concurrency=concurrency, report_dir=report_dir,
                progress=progress, on_ready=ready, faults=faults, hub_url=hub_url, data=data,
                dialects=mix, vdxp_share=vdxp_share, settle=True,
            ),
            stop_on_sigterm=True,
            allocator=runtime.CLIENT,
        )  # fmt: skip
    if as_json:
        click.echo(json.dumps(outcome.summary, ensure_ascii=False))
    else:
        render_summary(outcome, Console())
    refused = outcome.summary["refused"]
    if refused:
        why = ", ".join(f"{n} {name}" for name, n in sorted(outcome.report["refused"].items()))
        fail(f"{refused:,} documents were refused by the hub ({why}): the run is not valid")
    days = outcome.report["by_day"]
    if days["compared"] and not days["agrees"]:
        wrong = days["days_disagreeing"] + days["hub_days_outside_window"]
        fail(
            f"the hub's own statistics disagree with the run on {len(wrong)} days"
            f" ({', '.join(wrong[:5])}{'…' if len(wrong) > 5 else ''}): see report.json by_day"
        )


def render_summary(outcome: Any, console: Console) -> None:
    """The run's summary as a table, with the published comparison and the report's path."""
    s = outcome.summary
    table = Table(title="Simulation summary", show_header=False)
    table.add_column("what")
    table.add_column("n", justify="right")
    for key in ("documents_sent", "documents_accepted", "updates", "deliveries", "acknowledged",
                "failed", "statuses", "lost", "duplicates", "refused", "sent", "received",
                "sent_and_received", "elapsed_s", "docs_per_s"):  # fmt: skip
        value = s[key]
        table.add_row(key.replace("_", " "), f"{value:,}" if isinstance(value, int) else str(value))
    latency = s["latency_ms"]
    table.add_row(
        "latency p50 / p95 / p99 ms (wall clock)",
        f"{latency['p50']} / {latency['p95']} / {latency['p99']}",
    )
    console.print(table)
    comparison = outcome.report["comparison"]
    console.print(f"Published: {comparison['published']}.")
    console.print(f"This run:  {comparison['this_run']}.")
    console.print(f"Counted as: {comparison['convention']}.")
    days = outcome.report["by_day"]
    if days["compared"]:
        shown = sum(1 for r in days["rows"] if r["hub_sent"])
        verdict = "agree" if days["agrees"] else "DISAGREE"
        console.print(
            f"The hub's own statistics {verdict} with the run day by day (it ran on the"
            f" simulation's clock: {shown} days with documents)."
        )
    written = outcome.report.get("dialects") or {}
    if written:
        listed = ", ".join(
            f"{name} {d['accepted']:,}/{d['sent']:,} ({d['agencies']} agencies)"
            for name, d in sorted(written.items())
        )
        console.print(f"Packages accepted/sent by dialect: {listed}.")
    refused = outcome.report.get("refused") or {}
    if refused:
        listed = ", ".join(f"{n} {problem}" for problem, n in sorted(refused.items()))
        console.print(f"Refused by the hub: {listed}.")
    if outcome.html is not None:
        console.print(f"Report: {outcome.html}")


@click.command()
@click.option(
    "--documents",
    type=click.IntRange(1),
    default=2_000,
    show_default=True,
    help="How many packages: the floor signs, verifies and stores this many, and the hub "
    "exchanges as many at full rate.",
)
@click.option("--attachment-kb", type=click.FloatRange(0.5), default=20.0, show_default=True)
@click.option("--concurrency", type=click.IntRange(1, 256), default=8, show_default=True)
@click.option(
    "--verifier",
    type=click.Choice(VERIFIERS),
    default="xmlsec",
    show_default=True,
    help="The hub's signature engine (to compare them).",
)
@click.option(
    "--db",
    default=None,
    help="An empty PostgreSQL database for the hub (postgresql://…); default SQLite.",
)
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True,
              help="Hub worker processes (more than one needs --db).")  # fmt: skip
@click.option(
    "--face",
    type=click.Choice(["native", "vdxp"]),
    default="native",
    show_default=True,
    help="The agencies' API: axis-node's (native), or the national axis's, as VNPT's SDK calls it.",
)
@click.option(
    "--scenario",
    type=click.Choice(["point-to-point", "seed-2020"]),
    default="point-to-point",
    show_default=True,
    help="point-to-point: the floor and the pipeline alone (one recipient, no status); "
    "seed-2020: the national mix of axis simulate (95 agencies, ~3.6 recipients, statuses).",
)
@click.option("--json", "as_json", is_flag=True, help="Print only the figures as JSON on stdout.")
def bench(
    documents: int,
    attachment_kb: float,
    concurrency: int,
    verifier: str,
    db: str | None,
    workers: int,
    face: str,
    scenario: str,
    as_json: bool,
) -> None:
    """Measure the floor (sign + verify + store in one process) and the end-to-end exchange
    through a real hub on loopback; print both, their ratio, send latency and peak RSS.
    With --scenario seed-2020, the national mix instead: what a document costs in CPU,
    requests and TLS handshakes, the hub's memory over the run, the projected window."""
    from nodes.sim.bench import bench as run_bench

    if workers > 1 and not db:
        fail("--workers above 1 needs --db postgresql://… (SQLite serves one worker)")
    if scenario == "seed-2020":
        if face != "native" or verifier != "xmlsec":
            fail("--scenario seed-2020 runs the native face with the xmlsec verifier")
        _bench_mix(documents, attachment_kb, concurrency, db, workers, as_json)
        return

    stages = {
        "sign": "floor: sign",
        "verify": "floor: verify",
        "store": "floor: store",
        "e2e": "hub: full rate",
        "paced": "hub: half rate",
    }
    with _stage_bars(stages, as_json) as progress:
        result = runtime.run(
            run_bench(
                documents,
                attachment_kb=attachment_kb,
                concurrency=concurrency,
                verifier=verifier,
                db=db,
                workers=workers,
                progress=progress,
                face=face,
            ),
            stop_on_sigterm=True,
            allocator=runtime.CLIENT,
        )
    if as_json:
        click.echo(json.dumps(result.as_json()))
    else:
        render_bench(result, Console())
    if result.lost:
        fail(f"{result.lost} accepted documents were never acknowledged: the run is not valid")


@contextlib.contextmanager
def _stage_bars(
    stages: dict[str, str], transient: bool
) -> Iterator[Callable[[str, int, int], None]]:
    """A progress bar for each stage a bench reports (``progress(stage, done, total)``),
    on stderr; gone at the end with ``transient`` (--json)."""
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=err, transient=transient,
    ) as bar:  # fmt: skip
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stages[stage], total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield progress


def _bench_mix(
    documents: int,
    attachment_kb: float,
    concurrency: int,
    db: str | None,
    workers: int,
    as_json: bool,
) -> None:
    from nodes.sim.bench_mix import bench_mix

    stages = {"mix": "national mix: full rate", "paced": "national mix: half rate"}
    with _stage_bars(stages, as_json) as progress:
        result = runtime.run(
            bench_mix(
                documents,
                attachment_kb=attachment_kb,
                concurrency=concurrency,
                db=db,
                workers=workers,
                progress=progress,
                settle=True,
            ),
            stop_on_sigterm=True,
            allocator=runtime.CLIENT,
        )
    if as_json:
        click.echo(json.dumps(result.as_json()))
    else:
        render_mix(result, Console())
    if result.lost or result.refused:
        fail(
            f"{result.lost} documents never acknowledged, {result.refused} refused:"
            " the run is not valid"
        )


def render_mix(result: Any, console: Console) -> None:
    """The national mix's figures as a table, with how each was measured."""
    figures = result.as_json()
    table = Table(
        title=f"axis bench --scenario seed-2020: {result.documents:,} documents",
        show_header=False,
    )
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_column("how", style="dim")
    table.add_row(
        "rate", f"{result.per_s:,.1f} documents/s",
        f"through axis serve ({result.hub}) over TLS, {result.elapsed_s:.0f} s",
    )  # fmt: skip
    database = (
        f", PostgreSQL server {result.database_cpu_ms:.1f} ms"
        if result.database_cpu_ms is not None
        else ""
    )
    table.add_row(
        "CPU per document", f"hub {result.hub_cpu_ms:.1f} ms",
        f"agencies {result.agencies_cpu_ms:.1f} ms{database} (from /proc, at full rate)",
    )  # fmt: skip
    table.add_row(
        "cores busy", f"{figures['cores_busy']} of {figures['cores']}",
        "hub, database server and agencies together at full rate (CPU per document ×"
        " documents/s): another hub worker can use only what is left",
    )  # fmt: skip
    if result.hub_loop_busy is not None:
        table.add_row(
            "event loops busy", f"hub {figures['hub_loop_busy']}",
            f"agencies {figures['agencies_loop_busy']} of one core each, at full rate (each"
            " process's main thread, from /proc, which runs its requests, TLS and"
            " signatures; SQLite's threads run beside it): one core is its ceiling,"
            " whatever the cores busy leave free",
        )  # fmt: skip
    if result.floor_ms:
        floors = (
            f", PostgreSQL server {figures['database_cpu_floors_per_doc']}"
            if result.database_cpu_ms is not None
            else ""
        )
        table.add_row(
            "… in floors", f"hub {figures['hub_cpu_floors_per_doc']}",
            f"agencies {figures['agencies_cpu_floors_per_doc']}{floors}: the CPU divided by"
            f" the floor measured just before the run ({result.floor_ms:.2f} ms to sign and"
            " verify one package in one process), so runs of different days compare",
        )  # fmt: skip
    by_route = ", ".join(
        f"{route} {n}" for route, n in figures["requests_per_doc_by_route"].items()
    )
    table.add_row(
        "requests per document", f"{figures['requests_per_doc']}", f"{by_route} (target ≤ 7)"
    )
    table.add_row(
        "TLS handshakes per document", f"{figures['tls_handshakes_per_doc']}",
        f"{result.connections:,} new connections (target ≤ 0.1)",
    )  # fmt: skip
    table.add_row(
        "signed packages per document", f"{figures['signed_packages_per_doc']}",
        f"documents, updates, statuses; {figures['deliveries_per_doc']} deliveries each",
    )  # fmt: skip
    send, full = result.send_ms, result.saturated_send_ms
    table.add_row(
        "send latency p50 / p99", f"{send['p50']} / {send['p99']} ms",
        f"POST → answer at half rate ({result.paced_per_s:.1f}/s, {result.paced_documents:,}"
        f" documents; target p99 ≤ 50 ms); at full rate {full['p50']} / {full['p99']} ms",
    )  # fmt: skip
    if result.hub_send_ms is not None:
        hub = result.hub_send_ms
        table.add_row(
            "… as the hub timed them", f"≤ {hub['p50']} / ≤ {hub['p99']} ms",
            "every POST of the half-rate stage until its last document (statuses too),"
            " handler entry to answer (its histogram's buckets): the rest is TLS, the"
            " network and the agencies' own loop",
        )  # fmt: skip
    table.add_row(
        "hub RSS", f"{figures['hub_rss_mb_last']} MB",
        f"first {figures['hub_rss_mb_first']}, at 1,000 documents"
        f" {figures['hub_rss_mb_at_1000']}, peak {figures['hub_rss_mb_peak']} MB"
        " (target ≤ 300, flat); sockets open "
        + " → ".join(str(k) for k in figures["hub_sockets_series"].values()),
    )  # fmt: skip
    table.add_row(
        "the whole window", f"{figures['projected_window_min']} min",
        f"{figures['window_documents']:,} documents (1.26 million sent + received)"
        " at this rate",
    )  # fmt: skip
    if result.contract_ms_per_doc is not None:
        steps = figures["contract_steps_ms"]
        table.add_row(
            "… at the contract's floor", f"{figures['contract_window_min']} min",
            f"{figures['contract_ms_per_doc']} ms of CPU a document on all"
            f" {figures['cores']} cores and nothing else: each step the contract requires,"
            " timed just before the run with the hub's and the agencies' own code and"
            f" weighed by this run's mix (edoc signed {steps['edoc_signed']}, taken by the"
            f" hub {steps['edoc_taken']}; status {steps['status_signed']} /"
            f" {steps['status_taken']}; receipt signed {steps['receipt_signed']}; row"
            f" {steps['stored']}; HTTPS request {steps['request']} ms);"
            f" {figures['checked_ms_per_doc']} ms with the agencies' own checks (receipt"
            f" checked {steps['receipt_checked']}, each edoc verified once"
            f" {steps['edoc_read']} ms)",
        )  # fmt: skip
    console.print(table)


def render_bench(result: Any, console: Console) -> None:
    """The benchmark's figures as a table, with how each was measured."""
    f = result.floor
    stage = f.per_package_ms()
    table = Table(title=f"axis bench: {result.documents:,} documents", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_column("how", style="dim")
    table.add_row(
        "floor", f"{f.per_s:,.0f} packages/s",
        f"one process: sign {stage['sign']} ms + verify {stage['verify']} ms"
        f" + store {stage['store']} ms per package",
    )  # fmt: skip
    table.add_row(
        "end to end", f"{result.e2e_per_s:,.1f} documents/s",
        f"through axis serve ({result.hub}) over TLS: send, fetch, ack ({result.e2e_s:.1f} s)",
    )  # fmt: skip
    table.add_row(
        "CPU per document", f"hub {result.hub_cpu_ms:.1f} ms",
        f"agencies {result.agencies_cpu_ms:.1f} ms (at full rate; steadier than rates)",
    )  # fmt: skip
    table.add_row("ratio", f"{result.ratio:.3f}", "end to end / floor (target ≥ 0.40)")
    send = result.send_ms
    table.add_row(
        "send latency p50 / p99", f"{send['p50']} / {send['p99']} ms",
        f"POST → 201 at half rate ({result.paced_per_s:.1f}/s, {result.paced_documents:,}"
        " documents; target p99 ≤ 50 ms)",
    )  # fmt: skip
    full = result.saturated_send_ms
    table.add_row("… at full rate", f"{full['p50']} / {full['p99']} ms", "the senders saturate")
    hub_mb, own_mb = result.hub_peak_rss_mb, result.bench_peak_rss_mb
    table.add_row(
        "peak RSS", f"{max(hub_mb, own_mb):.0f} MB",
        f"hub {hub_mb:.0f} MB, agencies and floor {own_mb:.0f} MB",
    )  # fmt: skip
    console.print(table)
