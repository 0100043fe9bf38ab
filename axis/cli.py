"""The ``axis`` command: set up a data folder, manage agencies and trust, run the hub."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from axis import datadir, logs, operations, runtime
from axis.config import VERIFIERS
from axis.core import pki
from axis.core.lifecycle import DeliveryState
from axis.datadir import DataDir, DataDirError
from axis.errors import AxisError
from axis.store import open_store
from axis.store.base import Agency, Store
from axis.verification import Cadence, verify_log

T = TypeVar("T")
err = Console(stderr=True)


def fail(message: str) -> None:
    """One line on stderr, exit status 1."""
    click.echo(f"axis: {message}", err=True)
    sys.exit(1)


def run_store(data: DataDir, db: str | None, work: Callable[[Store], Awaitable[T]]) -> T:
    """Open the data folder's store, run ``work`` on it, close it."""

    async def go() -> T:
        store = open_store(data.database_url(db))
        await store.open()
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return runtime.run(go())
    except (AxisError, DataDirError, ValueError) as exc:
        fail(str(exc))
        raise  # unreachable: fail() exits


data_option = click.option(
    "--data",
    "data_dir",
    envvar="AXIS_DATA",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The data folder (default ./axis-data, or $AXIS_DATA).",
)
db_option = click.option(
    "--db", envvar="AXIS_DB", default=None, help="Database URL (default DATA/axis.db)."
)


def _without_password(url: str) -> str:
    """A database URL fit to print: a password in it becomes ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _data(data_dir: Path | None, need_init: bool = True) -> DataDir:
    data = datadir.resolve(data_dir)
    if need_init:
        try:
            data.require()
        except DataDirError as exc:
            fail(str(exc))
    return data


@click.group()
@click.version_option(package_name="axis-hub")
def main() -> None:
    """Axis: a national document interchange hub (edXML, QCVN 102:2016)."""


@main.command()
@data_option
@db_option
def init(data_dir: Path | None, db: str | None) -> None:
    """Create a data folder (development CA, hub certificate, admin token, axis.toml) and
    bring its database's schema up to date."""
    data = _data(data_dir, need_init=False)
    try:
        datadir.init(data)
    except DataDirError as exc:
        fail(str(exc))
    run_store(data, db, lambda store: store.ping())  # opening applies the migrations
    click.echo(f"Initialised {data.root}")
    click.echo(f"  development CA   {data.ca_cert}")
    click.echo(f"  hub certificate  {data.hub_cert}")
    click.echo(f"  admin token      {data.admin_token} (mode 0600)")
    click.echo(f"  settings         {data.config}")
    click.echo(f"  database         {_without_password(data.database_url(db))}")
    click.echo("Next: axis agency add ORGAN_ID --name NAME, then axis serve.")


@main.group()
def ca() -> None:
    """Certificate authorities the hub trusts."""


@ca.command("trust")
@data_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def ca_trust(data_dir: Path | None, file: Path) -> None:
    """Trust an outside CA (e.g. the Government CA) for agency certificates."""
    data = _data(data_dir)
    try:
        cert = datadir.trust_ca(data, file.read_bytes())
    except (DataDirError, AxisError) as exc:
        fail(str(exc))
        return
    click.echo(f"Trusted {cert.subject.rfc4514_string()}")
    click.echo("Restart a running hub for TLS client certificates from this CA.")


@main.group()
def agency() -> None:
    """Register, list and revoke agencies."""


@agency.command("add")
@data_option
@db_option
@click.argument("organ_id")
@click.option("--name", required=True, help="The agency's name, e.g. 'UBND tỉnh Nghệ An'.")
@click.option("--endpoint", default=None, help="Push endpoint URL (https://127.0.0.1:P/).")
@click.option(
    "--cert",
    "cert_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Register a certificate issued by a trusted outside CA instead of issuing one.",
)
def agency_add(
    data_dir: Path | None,
    db: str | None,
    organ_id: str,
    name: str,
    endpoint: str | None,
    cert_file: Path | None,
) -> None:
    """Register an agency and write its node profile under DATA/agencies/ORGAN_ID."""
    data = _data(data_dir)
    hub_url = f"https://localhost:{data.settings().port}"

    async def work(store: Store) -> Agency:
        if await store.get_agency(organ_id) is not None:
            raise DataDirError(f"agency {organ_id} is already registered")
        cert_pem = cert_file.read_bytes() if cert_file else None
        found = datadir.new_agency(data, organ_id, name, hub_url, endpoint, cert_pem)
        try:
            await store.add_agency(found)
        except BaseException:
            # Registration failed (e.g. that certificate is already registered to another
            # agency): take the new profile back so nothing is left half-made.
            shutil.rmtree(data.profile(organ_id), ignore_errors=True)
            raise
        return found

    registered = run_store(data, db, work)
    profile = data.profile(organ_id)
    click.echo(f"Registered {registered.organ_id} ({registered.name})")
    click.echo(f"  node profile  {profile}")
    if cert_file:
        click.echo(f"  put the agency's private key at {profile / 'key.pem'} to use axis-node")


@agency.command("list")
@data_option
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def agency_list(data_dir: Path | None, db: str | None, as_json: bool) -> None:
    """The agency directory."""
    data = _data(data_dir)
    found = run_store(data, db, lambda store: store.list_agencies())
    if as_json:
        rows: list[dict[str, Any]] = [
            {
                "organ_id": a.organ_id,
                "name": a.name,
                "active": a.active,
                "endpoint": a.endpoint,
                "fingerprint": a.fingerprint,
                "registered_at": a.registered_at.isoformat(),
            }
            for a in found
        ]
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = Table(title=f"{len(found)} agencies")
    for column in ("OrganId", "Name", "Active", "Endpoint"):
        table.add_column(column)
    for a in found:
        table.add_row(a.organ_id, a.name, "yes" if a.active else "revoked", a.endpoint or "pull")
    Console().print(table)


@agency.command("revoke")
@data_option
@db_option
@click.argument("organ_id")
def agency_revoke(data_dir: Path | None, db: str | None, organ_id: str) -> None:
    """Stop an agency at once: its connections and signatures are refused from now on."""
    data = _data(data_dir)
    if not run_store(data, db, lambda store: store.set_agency_active(organ_id, False)):
        fail(f"no agency {organ_id}")
    click.echo(f"Revoked {organ_id}")


@main.command()
@data_option
@db_option
@click.option("--host", default=None, help="Node API address (default from axis.toml).")
@click.option("--port", type=int, default=None, help="Node API port (0 picks a free one).")
@click.option("--admin-port", type=int, default=None, help="Operator API port.")
@click.option("--allow-sha1", is_flag=True, default=None, help="Accept SHA-1 signatures.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="One line per request and per state change; json for machines.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    help="Hub worker processes on the same ports (more than one needs PostgreSQL: --db).",
)
@click.option("--reuse-port", is_flag=True, hidden=True, help="One of --workers' processes.")
def serve(
    data_dir: Path | None,
    db: str | None,
    host: str | None,
    port: int | None,
    admin_port: int | None,
    allow_sha1: bool | None,
    log_format: str,
    workers: int,
    reuse_port: bool,
) -> None:
    """Run the hub until interrupted."""
    from axis.web.app import serve_forever

    data = _data(data_dir)
    logs.configure(log_format)
    try:
        settings = data.settings().with_overrides(
            host=host, port=port, admin_port=admin_port, allow_sha1=allow_sha1
        )
        url = data.database_url(db)
        if workers > 1:
            if open_store(url).single_node:
                fail(
                    f"--workers {workers}: several workers need a shared PostgreSQL database"
                    " (--db postgresql://… or $AXIS_DB); SQLite serves one worker"
                )
            from axis.workers import WorkersFailed, supervise

            try:
                runtime.run(supervise(data, settings, url, workers, log_format))
            except WorkersFailed as exc:
                fail(str(exc))
            return
        runtime.run(serve_forever(data, settings, db, reuse_port))
    except (AxisError, DataDirError, ValueError, OSError) as exc:
        fail(str(exc))


@main.command()
@data_option
@db_option
@click.option(
    "--state",
    type=click.Choice([s.value for s in DeliveryState]),
    default=DeliveryState.FAILED.value,
    show_default=True,
    help="Which deliveries to list.",
)
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def deliveries(
    data_dir: Path | None, db: str | None, state: str, limit: int, as_json: bool
) -> None:
    """Deliveries in one state, newest first: by default the failed pushes."""
    data = _data(data_dir)
    found = run_store(data, db, lambda store: store.deliveries_in(DeliveryState(state), limit))
    if as_json:
        click.echo(json.dumps([d.as_json() for d in found], ensure_ascii=False, indent=2))
        return
    table = Table(title=f"{len(found)} {state} deliveries (newest first)")
    for column in ("Package", "To", "Updated", "Attempts", "Last error"):
        table.add_column(column, overflow="fold")
    for d in found:
        table.add_row(
            d.package_id,
            d.recipient,
            d.updated_at.isoformat(timespec="seconds"),
            str(d.attempts),
            d.last_error or "",
        )
    Console().print(table)


def _parse_day(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a day (YYYY-MM-DD)", param_hint=name) from None


@main.command()
@data_option
@db_option
@click.option("--from", "day_from", default=None, help="First day (YYYY-MM-DD, UTC), inclusive.")
@click.option("--to", "day_to", default=None, help="Last day (YYYY-MM-DD, UTC), inclusive.")
@click.option("--json", "as_json", is_flag=True, help="Print the /v1/stats JSON.")
def stats(
    data_dir: Path | None, db: str | None, day_from: str | None, day_to: str | None, as_json: bool
) -> None:
    """Exchange statistics: documents, deliveries by state, statuses, latency, per day."""
    data = _data(data_dir)
    first, last = _parse_day(day_from, "--from"), _parse_day(day_to, "--to")
    figures = run_store(data, db, lambda store: operations.statistics(store, first, last))
    if as_json:
        click.echo(json.dumps(figures, ensure_ascii=False, indent=2))
        return
    render_stats(figures, Console())


def render_stats(figures: dict[str, Any], console: Console) -> None:
    """The statistics as tables a person reads."""
    totals = Table(title="Axis exchange statistics", show_header=False)
    totals.add_column("what")
    totals.add_column("n", justify="right")
    agencies = figures["agencies"]
    latency = "{p50} / {p95} / {p99}".format(**figures["latency_ms"])
    for label, value in (
        ("documents", figures["documents"]),
        ("statuses", figures["statuses"]),
        ("deliveries", figures["deliveries"]),
        ("agencies active / registered", f"{agencies['active']} / {agencies['registered']}"),
        (
            "latency p50 / p95 / p99 (ms, ≤)",
            latency,
        ),
    ):
        totals.add_row(label, f"{value:,}" if isinstance(value, int) else str(value))
    console.print(totals)
    for title, mapping in (("by delivery state", figures["by_state"]),
                           ("by status code", figures["by_status_code"])):  # fmt: skip
        table = Table(title=title)
        table.add_column(title.split()[-1])
        table.add_column("n", justify="right")
        for key, n in mapping.items():
            table.add_row(key, f"{n:,}")
        console.print(table)
    days = Table(title="per day")
    for column in ("day", "documents", "statuses", "deliveries"):
        days.add_column(column, justify="right" if column != "day" else "left")
    for row in figures["per_day"]:
        days.add_row(row["day"], f"{row['documents']:,}", f"{row['statuses']:,}",
                     f"{row['deliveries']:,}")  # fmt: skip
    console.print(days)
    for title, key in (("top senders", "top_senders"), ("top recipients", "top_recipients")):
        table = Table(title=title)
        table.add_column("OrganId")
        table.add_column("n", justify="right")
        for row in figures[key]:
            table.add_row(row["organ_id"], f"{row['count']:,}")
        console.print(table)


@main.group(name="log")
def log_group() -> None:
    """The tamper-evident log."""


@log_group.command("verify")
@data_option
@db_option
def log_verify(data_dir: Path | None, db: str | None) -> None:
    """Recompute the hash chain, check the signed checkpoints, and check that every stored
    package still hashes to what the log recorded when it arrived. Exits 1 on the first
    problem, naming the entry or package."""
    data = _data(data_dir)
    hub_cert = pki.load_cert(data.hub_cert.read_bytes())
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        console=err, transient=True,
    ) as bar:  # fmt: skip
        tasks: dict[str, TaskID] = {}

        def progress(what: str, n: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(f"checking {what}", total=None)
            bar.advance(tasks[what], n)

        settings = data.settings()
        cadence = Cadence(settings.checkpoint_every, settings.checkpoint_interval_s)
        report = run_store(data, db, lambda store: verify_log(store, hub_cert, progress, cadence))
    summary = (
        f"{report.entries:,} log entries, {report.checkpoints:,} signed checkpoints,"
        f" {report.packages:,} packages"
    )
    if not report.ok:
        click.echo(f"axis: log verification FAILED at {report.problem}", err=True)
        click.echo(f"checked before the failure: {summary}", err=True)
        sys.exit(1)
    click.echo(f"OK: {summary}: the chain is intact and every package matches the log.")


@main.command()
@click.option(
    "--scenario", type=click.Choice(["seed-2020"]), default="seed-2020", show_default=True
)
@click.option("--agencies", type=click.IntRange(2, 95), default=None, help="Fewer agencies.")
@click.option(
    "--documents",
    type=click.IntRange(1),
    default=1_260_000,
    show_default=True,
    help="How many documents (the published figure by default).",
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
@data_option
@click.option("--json", "as_json", is_flag=True, help="Print only the summary JSON on stdout.")
def simulate(
    scenario: str,
    agencies: int | None,
    documents: int,
    seed: int,
    attachment_kb: float,
    concurrency: int,
    report_dir: Path | None,
    faults: bool,
    hub_url: str | None,
    data_dir: Path | None,
    as_json: bool,
) -> None:
    """Run simulated agencies against a hub on loopback and report what they exchanged."""
    data = _data(data_dir) if hub_url else None
    from axis.simulate import simulate as run_simulation

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
            )
        )  # fmt: skip
    if as_json:
        click.echo(json.dumps(outcome.summary, ensure_ascii=False))
        return
    render_summary(outcome, Console())


def render_summary(outcome: Any, console: Console) -> None:
    """The run's summary as a table, with the published comparison and the report's path."""
    s = outcome.summary
    table = Table(title="Simulation summary", show_header=False)
    table.add_column("what")
    table.add_column("n", justify="right")
    for key in ("documents_sent", "documents_accepted", "deliveries", "acknowledged", "failed",
                "statuses", "lost", "duplicates", "elapsed_s", "docs_per_s"):  # fmt: skip
        value = s[key]
        table.add_row(key.replace("_", " "), f"{value:,}" if isinstance(value, int) else str(value))
    latency = s["latency_ms"]
    table.add_row(
        "latency p50 / p95 / p99 ms", f"{latency['p50']} / {latency['p95']} / {latency['p99']}"
    )
    console.print(table)
    comparison = outcome.report["comparison"]
    console.print(f"Published: {comparison['published']}.")
    console.print(f"This run:  {comparison['this_run']}.")
    refused = outcome.report.get("refused") or {}
    if refused:
        listed = ", ".join(f"{n} {problem}" for problem, n in sorted(refused.items()))
        console.print(f"Refused by the hub: {listed}.")
    if outcome.html is not None:
        console.print(f"Report: {outcome.html}")


@main.command()
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
@click.option("--json", "as_json", is_flag=True, help="Print only the figures as JSON on stdout.")
def bench(
    documents: int,
    attachment_kb: float,
    concurrency: int,
    verifier: str,
    db: str | None,
    workers: int,
    as_json: bool,
) -> None:
    """Measure the floor (sign + verify + store in one process) and the end-to-end exchange
    through a real hub on loopback; print both, their ratio, send latency and peak RSS."""
    from axis.bench import bench as run_bench

    if workers > 1 and not db:
        fail("--workers above 1 needs --db postgresql://… (SQLite serves one worker)")

    stages = {
        "sign": "floor: sign",
        "verify": "floor: verify",
        "store": "floor: store",
        "e2e": "hub: full rate",
        "paced": "hub: half rate",
    }
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=err, transient=as_json,
    ) as bar:  # fmt: skip
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stages[stage], total=total)
            bar.update(tasks[stage], completed=done, total=total)

        result = runtime.run(
            run_bench(
                documents,
                attachment_kb=attachment_kb,
                concurrency=concurrency,
                verifier=verifier,
                db=db,
                workers=workers,
                progress=progress,
            )
        )
    if as_json:
        click.echo(json.dumps(result.as_json()))
    else:
        render_bench(result, Console())
    if result.lost:
        fail(f"{result.lost} accepted documents were never acknowledged: the run is not valid")


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
