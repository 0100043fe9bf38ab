"""What operators ask from the command line: failed deliveries, statistics, the log's proof."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from axis.cli.common import data_folder, data_option, db_option, err, run_store
from axis.core import pki
from axis.core.lifecycle import DeliveryState
from axis.usecases import operations
from axis.usecases.verification import Cadence, verify_log


@click.command()
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
    data = data_folder(data_dir)
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


@click.command()
@data_option
@db_option
@click.option("--from", "day_from", default=None, help="First day (YYYY-MM-DD, UTC), inclusive.")
@click.option("--to", "day_to", default=None, help="Last day (YYYY-MM-DD, UTC), inclusive.")
@click.option("--json", "as_json", is_flag=True, help="Print the /v1/stats JSON.")
def stats(
    data_dir: Path | None, db: str | None, day_from: str | None, day_to: str | None, as_json: bool
) -> None:
    """Exchange statistics: documents, deliveries by state, statuses, latency, per day."""
    data = data_folder(data_dir)
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
        ("documents (sent)", figures["documents"]),
        ("statuses", figures["statuses"]),
        ("deliveries (received)", figures["deliveries"]),
        ("sent + received, as the axis counts", figures["sent_and_received"]),
        ("agencies active / registered", f"{agencies['active']} / {agencies['registered']}"),
        (
            "latency p50 / p95 / p99 (ms, ≤)",
            latency,
        ),
    ):
        totals.add_row(label, f"{value:,}" if isinstance(value, int) else str(value))
    console.print(totals)
    for title, mapping in (("by delivery state", figures["by_state"]),
                           ("by status code", figures["by_status_code"]),
                           ("national axis's API: packages by system", figures["by_system"]),
                           ("… taken with a deviation, by system and rule",
                            figures["deviations"])):  # fmt: skip
        if not mapping and "system" in title:
            continue  # the face is not used: say nothing of it
        table = Table(title=title)
        table.add_column(title.split()[-1] if "system" not in title else "system")
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


@click.group(name="log")
def log_group() -> None:
    """The tamper-evident log."""


@log_group.command("verify")
@data_option
@db_option
def log_verify(data_dir: Path | None, db: str | None) -> None:
    """Recompute the hash chain, check the signed checkpoints, and check that every stored
    package still hashes to what the log recorded when it arrived. Exits 1 on the first
    problem, naming the entry or package."""
    data = data_folder(data_dir)
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
        cadence = Cadence(settings.log.checkpoint_every, settings.log.checkpoint_interval_s)
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
