"""``axis agency add | list | revoke``: the agency directory."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from axis.cli.common import data_folder, data_option, db_option, fail, run_store
from axis.store.base import Agency, Store
from axis.usecases import registration


@click.group()
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
    data = data_folder(data_dir)
    hub_url = f"https://localhost:{data.settings().hub.port}"

    cert_pem = cert_file.read_bytes() if cert_file else None

    def work(store: Store) -> Awaitable[Agency]:
        return registration.register(
            data, store, organ_id, name, hub_url=hub_url, endpoint=endpoint, cert_pem=cert_pem
        )

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
    data = data_folder(data_dir)
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
    data = data_folder(data_dir)
    if not run_store(data, db, lambda store: store.set_agency_active(organ_id, False)):
        fail(f"no agency {organ_id}")
    click.echo(f"Revoked {organ_id}")
