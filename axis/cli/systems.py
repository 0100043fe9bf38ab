"""``axis system add | list | revoke``: the integration centres' systems that call the
national axis's own API (VNPT's SDK: a systemId and a secret), each speaking for its
agencies (``axis agency add … --system``, or the API's registerAgency)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from axis.cli.common import data_folder, data_option, db_option, fail, run_store
from axis.core import pki, vdxp
from axis.store.base import Agency, Store, System


@click.group()
def system() -> None:
    """Systems of the national axis's API (VNPT's SDK): add, list, revoke."""


@system.command("add")
@data_option
@db_option
@click.argument("system_id")
@click.option("--name", default="", help="What the system is, e.g. 'Trung tâm tích hợp Tây Ninh'.")
@click.option(
    "--secret-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Take the secret from this file (its first line) instead of generating one.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the generated secret to this file (mode 0600) instead of printing it.",
)
def system_add(
    data_dir: Path | None,
    db: str | None,
    system_id: str,
    name: str,
    secret_file: Path | None,
    out: Path | None,
) -> None:
    """Add SYSTEM_ID (the SDK's systemId, e.g. 00.53.W00) with a secret.

    The secret is shown once (or written to --out): the database keeps it sealed under the
    data folder's systems.key, which the HMAC needs to open it."""
    data = data_folder(data_dir)
    if not vdxp.SYSTEM_ID_RE.fullmatch(system_id):
        fail(f"{system_id!r} is not a system id (letters, digits, '.', '_', '-'; 64 at most)")
    if secret_file is not None:
        lines = secret_file.read_text(encoding="utf-8").splitlines()
        secret = lines[0].strip() if lines else ""
        if len(secret) < 8:
            fail(f"{secret_file}: the secret must be at least 8 characters")
    else:
        secret = vdxp.new_secret()
    sealed = vdxp.seal(secret, data.systems_key_bytes(), system_id)
    record = System(system_id, name or system_id, sealed, datetime.now(UTC))

    async def work(store: Store) -> None:
        await store.add_system(record)

    run_store(data, db, work)
    click.echo(f"Added system {system_id}", err=out is None and secret_file is None)
    if secret_file is not None:
        return
    if out is not None:
        pki.write_private(out, (secret + "\n").encode())
        click.echo(f"  secret written to {out}")
    else:
        click.echo(secret)  # alone on stdout, for scripts: SECRET=$(axis system add …)


@system.command("list")
@data_option
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def system_list(data_dir: Path | None, db: str | None, as_json: bool) -> None:
    """Every system and the agencies it speaks for (never a secret)."""
    data = data_folder(data_dir)

    async def work(store: Store) -> list[tuple[System, list[Agency]]]:
        return [(s, await store.system_agencies(s.system_id)) for s in await store.list_systems()]

    found = run_store(data, db, work)
    if as_json:
        rows = [
            {
                "system_id": s.system_id,
                "name": s.name,
                "active": s.active,
                "added_at": s.added_at.isoformat(),
                "agencies": [a.organ_id for a in agencies if a.active],
            }
            for s, agencies in found
        ]
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = Table("system", "name", "active", "agencies")
    for s, agencies in found:
        active = ", ".join(a.organ_id for a in agencies if a.active) or "-"
        table.add_row(s.system_id, s.name, "yes" if s.active else "revoked", active)
    Console().print(table)


@system.command("revoke")
@data_option
@db_option
@click.argument("system_id")
def system_revoke(data_dir: Path | None, db: str | None, system_id: str) -> None:
    """Revoke SYSTEM_ID: its calls fail from now on (its agencies' history stays)."""
    data = data_folder(data_dir)

    async def work(store: Store) -> bool:
        return await store.set_system_active(system_id, False)

    if not run_store(data, db, work):
        fail(f"no system {system_id!r}")
    click.echo(f"Revoked system {system_id}")
