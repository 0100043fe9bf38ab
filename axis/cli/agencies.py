"""``axis agency add | list | revoke | code``: the agency directory and the codes agencies
hold."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from axis.cli.common import data_folder, data_option, db_option, fail, run_store
from axis.store.base import Agency, AgencyCode, Store
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
@click.option(
    "--code",
    "aliases",
    multiple=True,
    metavar="CODE",
    help="Another code the agency holds (its 2016 OrganId beside its Decision 20 code, or the"
    " other way round); repeatable.",
)
@click.option(
    "--system",
    "system_id",
    default=None,
    metavar="SYSTEM_ID",
    help="The system (axis system add) that speaks for it on the national axis's API too.",
)
def agency_add(
    data_dir: Path | None,
    db: str | None,
    organ_id: str,
    name: str,
    endpoint: str | None,
    cert_file: Path | None,
    aliases: tuple[str, ...],
    system_id: str | None,
) -> None:
    """Register an agency and write its node profile under DATA/agencies/ORGAN_ID.

    ORGAN_ID is the code the hub files it under; a package addressed by any of its codes
    reaches it."""
    data = data_folder(data_dir)
    hub_url = f"https://localhost:{data.settings().hub.port}"

    cert_pem = cert_file.read_bytes() if cert_file else None

    def work(store: Store) -> Awaitable[Agency]:
        return registration.register(
            data,
            store,
            organ_id,
            name,
            hub_url=hub_url,
            endpoint=endpoint,
            cert_pem=cert_pem,
            aliases=aliases,
            system_id=system_id,
        )

    registered = run_store(data, db, work)
    profile = data.profile(organ_id)
    click.echo(f"Registered {registered.organ_id} ({registered.name})")
    if aliases:
        click.echo(f"  also holds    {', '.join(aliases)}")
    if system_id:
        click.echo(f"  system        {system_id} (the national axis's API)")
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

    async def work(store: Store) -> tuple[list[Agency], list[AgencyCode]]:
        return await store.list_agencies(), await store.agency_codes()

    found, codes = run_store(data, db, work)
    held: dict[str, list[AgencyCode]] = {}
    for code in codes:
        held.setdefault(code.organ_id or "", []).append(code)
    if as_json:
        rows: list[dict[str, Any]] = [
            {
                "organ_id": a.organ_id,
                "name": a.name,
                "active": a.active,
                "endpoint": a.endpoint,
                "fingerprint": a.fingerprint,
                "registered_at": a.registered_at.isoformat(),
                "codes": [c.code for c in held.get(a.organ_id, []) if not c.closed],
                "closed": {c.code: c.successor for c in held.get(a.organ_id, []) if c.closed},
            }
            for a in found
        ]
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = Table(title=f"{len(found)} agencies")
    for column in ("OrganId", "Name", "Active", "Endpoint", "Other codes"):
        table.add_column(column)
    for a in found:
        others = [_shown(c) for c in held.get(a.organ_id, []) if c.code != a.organ_id]
        table.add_row(
            _shown(next((c for c in held.get(a.organ_id, []) if c.code == a.organ_id), None))
            or a.organ_id,
            a.name,
            "yes" if a.active else "revoked",
            a.endpoint or "pull",
            ", ".join(others),
        )
    Console().print(table)
    unheld = held.get("", [])
    if unheld:
        click.echo("Closed codes no agency here held: " + ", ".join(_shown(c) for c in unheld))


def _shown(code: AgencyCode | None) -> str:
    if code is None:
        return ""
    return f"{code.code} (closed: {code.successor})" if code.closed else code.code


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


@agency.group("code")
def code() -> None:
    """Codes an agency holds besides its OrganId, and closing codes when bodies merge."""


@code.command("add")
@data_option
@db_option
@click.argument("organ_id")
@click.argument("new_code", metavar="CODE")
def code_add(data_dir: Path | None, db: str | None, organ_id: str, new_code: str) -> None:
    """Let agency ORGAN_ID hold CODE too: packages addressed to CODE reach it."""
    data = data_folder(data_dir)
    run_store(data, db, lambda store: registration.add_code(store, organ_id, new_code))
    click.echo(f"{organ_id} now holds {new_code}")


@code.command("close")
@data_option
@db_option
@click.argument("closed_code", metavar="CODE")
@click.option("--successor", required=True, metavar="CODE", help="The code that succeeds it.")
def code_close(data_dir: Path | None, db: str | None, closed_code: str, successor: str) -> None:
    """Close CODE, naming its successor (as when provinces merge): packages addressed to it
    are refused from now on, naming the successor. It is never given out again."""
    data = data_folder(data_dir)
    record = run_store(
        data, db, lambda store: registration.close_code(store, closed_code, successor)
    )
    holder = f" (held by {record.organ_id})" if record.organ_id else ""
    click.echo(f"Closed {closed_code}{holder}; {successor} succeeds it")
