"""``axis serve``: run the hub (one process, or ``--workers N`` over PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import click

from axis.cli.common import data_folder, data_option, db_option, fail
from axis.errors import AxisError
from axis.host import logs, runtime
from axis.store import open_store


@click.command()
@data_option
@db_option
@click.option("--host", default=None, help="Node API address (default from axis.toml).")
@click.option("--port", type=int, default=None, help="Node API port (0 picks a free one).")
@click.option("--admin-port", type=int, default=None, help="Operator API port.")
@click.option("--allow-sha1", is_flag=True, default=None, help="Accept SHA-1 signatures.")
@click.option(
    "--vdxp-port",
    type=int,
    default=None,
    help="Serve the national axis's own API (VNPT's SDK) on this port too ([vdxp]).",
)
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
@click.option(
    "--simulated-clock",
    is_flag=True,
    hidden=True,
    help="Record the times requests say (axis simulate's own hub only; refused elsewhere).",
)
def serve(
    data_dir: Path | None,
    db: str | None,
    host: str | None,
    port: int | None,
    admin_port: int | None,
    allow_sha1: bool | None,
    vdxp_port: int | None,
    log_format: str,
    workers: int,
    reuse_port: bool,
    simulated_clock: bool,
) -> None:
    """Run the hub until interrupted."""
    from axis.web.app import serve_forever

    runtime.die_with_parent()
    data = data_folder(data_dir)
    logs.configure(log_format)
    try:
        settings = data.settings().with_overrides(
            host=host, port=port, admin_port=admin_port, allow_sha1=allow_sha1, vdxp_port=vdxp_port
        )
        url = data.database_url(db)
        if simulated_clock:
            data.check_simulated_clock(settings)  # refused before anything starts
        if workers > 1:
            if open_store(url).single_node:
                fail(
                    f"--workers {workers}: several workers need a shared PostgreSQL database"
                    " (--db postgresql://… or $AXIS_DB); SQLite serves one worker"
                )
            from axis.host.workers import supervise

            runtime.run(supervise(data, settings, url, workers, log_format, simulated_clock))
            return
        runtime.run(serve_forever(data, settings, db, reuse_port, simulated_clock))
    except (AxisError, OSError) as exc:
        fail(str(exc))
