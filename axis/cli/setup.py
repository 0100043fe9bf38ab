"""``axis init`` and ``axis ca trust``: a data folder and the CAs it trusts."""

from __future__ import annotations

from pathlib import Path

import click

from axis.cli.common import data_folder, data_option, db_option, fail, run_store, without_password
from axis.errors import AxisError, DataDirError
from axis.host import datadir


@click.command()
@data_option
@db_option
@click.option(
    "--hub-key",
    type=click.Choice(["ec", "rsa"]),
    default="ec",
    show_default=True,
    help="The hub's key: ECDSA P-256 (cheap to sign receipts with), or RSA-2048.",
)
def init(data_dir: Path | None, db: str | None, hub_key: str) -> None:
    """Create a data folder (development CA, hub certificate, admin token, axis.toml) and
    bring its database's schema up to date."""
    data = data_folder(data_dir, need_init=False)
    try:
        datadir.init(data, hub_key_kind=hub_key)
    except DataDirError as exc:
        fail(str(exc))
    run_store(data, db, lambda store: store.ping())  # opening applies the migrations
    click.echo(f"Initialised {data.root}")
    click.echo(f"  development CA   {data.ca_cert}")
    click.echo(f"  hub certificate  {data.hub_cert}")
    click.echo(f"  admin token      {data.admin_token} (mode 0600)")
    click.echo(f"  settings         {data.config}")
    click.echo(f"  database         {without_password(data.database_url(db))}")
    click.echo("Next: axis agency add ORGAN_ID --name NAME, then axis serve.")


@click.group()
def ca() -> None:
    """Certificate authorities the hub trusts."""


@ca.command("trust")
@data_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def ca_trust(data_dir: Path | None, file: Path) -> None:
    """Trust an outside CA (e.g. the Government CA) for agency certificates."""
    data = data_folder(data_dir)
    try:
        cert = datadir.trust_ca(data, file.read_bytes())
    except AxisError as exc:
        fail(str(exc))
        return
    click.echo(f"Trusted {cert.subject.rfc4514_string()}")
    click.echo("Restart a running hub for TLS client certificates from this CA.")
