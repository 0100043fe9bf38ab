"""The ``axis-node`` command: one agency's side of the axis (SPEC §8)."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from axis.core import pki
from axis.core.formats import STATUS_CODES
from axis.errors import AxisError
from axis.host import runtime
from nodes.client import NodeClient
from nodes.listen import listen_forever
from nodes.profile import resolve

T = TypeVar("T")


def run(ctx: click.Context, work: Callable[[NodeClient], Awaitable[T]]) -> T:
    """Open a client on the chosen profile, run ``work``, and turn failures into one line
    on stderr with a non-zero exit status."""

    async def go() -> T:
        async with NodeClient(resolve(ctx.obj["profile"])) as node:
            return await work(node)

    try:
        return runtime.run(go(), allocator=runtime.CLIENT)
    except AxisError as exc:
        if exc.remote:
            click.echo(f"axis-node: the hub refused: {exc.headline()}", err=True)
            sys.exit(2)
        click.echo(f"axis-node: {exc}", err=True)
        sys.exit(1)
    except (OSError, ValueError) as exc:
        click.echo(f"axis-node: {exc}", err=True)
        sys.exit(1)


def emit(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


@click.group()
@click.option(
    "--profile",
    envvar="AXIS_PROFILE",
    type=click.Path(file_okay=False, path_type=Path),
    help="The agency's node profile folder (or $AXIS_PROFILE).",
)
@click.pass_context
def main(ctx: click.Context, profile: Path | None) -> None:
    """axis-node: send and receive signed edXML packages through an Axis hub."""
    ctx.obj = {"profile": profile}


@main.command()
@click.option("--to", "to", multiple=True, required=True, help="A recipient OrganId (repeat).")
@click.option("--subject", required=True, help="Trích yếu: the document's subject.")
@click.option(
    "--file",
    "files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An attachment (repeat).",
)
@click.option("--priority", type=click.IntRange(0, 4), default=0, help="0 thường … 4 hẹn giờ.")
@click.option("--json", "as_json", is_flag=True, help="Print the hub's answer as JSON.")
@click.pass_context
def send(
    ctx: click.Context,
    to: tuple[str, ...],
    subject: str,
    files: tuple[Path, ...],
    priority: int,
    as_json: bool,
) -> None:
    """Sign an edoc and send it."""
    sent = run(ctx, lambda node: node.send(list(to), subject, list(files), priority=priority))
    if as_json:
        emit(sent.answer)
        return
    a = sent.answer
    verb = "Sent" if sent.created else "Already sent"
    click.echo(f"{verb} {a['document_id']} as package {a['id']}")
    click.echo(f"  to {', '.join(a['recipients'])}; sha256 {a['sha256']}")


@main.command("verify-receipt")
@click.argument("receipt", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def verify_receipt_cmd(ctx: click.Context, receipt: Path) -> None:
    """Check a receipt against the hub's own certificate (hub.pem in the profile, pinned):
    what it says holds only if the hub's key signed it."""
    from axis.core.receipt import verify_receipt

    profile = resolve(ctx.obj["profile"])
    try:
        said = verify_receipt(receipt.read_bytes(), pki.load_cert(profile.hub_cert.read_bytes()))
    except AxisError as exc:
        click.echo(f"axis-node: {receipt}: {exc.detail}", err=True)
        sys.exit(1)
    click.echo(
        f"The hub's receipt: package {said.package_id} (sha256 {said.sha256}) from"
        f" {said.sender} to {', '.join(said.recipients)}, taken at {said.received_at.isoformat()}"
    )


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def inbox(ctx: click.Context, as_json: bool) -> None:
    """Packages waiting for this agency, oldest first."""
    items = run(ctx, lambda node: node.inbox_all())
    if as_json:
        emit({"items": items})
        return
    table = Table(title=f"{len(items)} waiting")
    for column in ("Id", "Kind", "From", "DocumentId", "Subject", "Received"):
        table.add_column(column, overflow="fold")
    for i in items:
        table.add_row(
            i["id"], i["kind"], i["from"], i["document_id"], i["subject"], i["received_at"]
        )
    Console().print(table)


@main.command()
@click.argument("package_id")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE."
)
@click.pass_context
def get(ctx: click.Context, package_id: str, output: Path | None) -> None:
    """Fetch a package's exact signed bytes."""
    body = run(ctx, lambda node: node.get(package_id))
    if output is None:
        sys.stdout.buffer.write(body)
        sys.stdout.buffer.flush()
        return
    output.write_bytes(body)
    click.echo(f"Wrote {len(body)} bytes to {output}", err=True)


@main.command()
@click.argument("package_id")
@click.pass_context
def ack(ctx: click.Context, package_id: str) -> None:
    """Confirm receipt: the package leaves the inbox."""
    run(ctx, lambda node: node.ack(package_id))
    click.echo(f"Acknowledged {package_id}")


@main.command()
@click.argument("package_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def track(ctx: click.Context, package_id: str, as_json: bool) -> None:
    """Each recipient's state and last status code, and the hub's trace (sender only)."""

    async def both(node: NodeClient) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return await node.track(package_id), await node.trace(package_id)

    rows, hops = run(ctx, both)
    if as_json:
        emit({"id": package_id, "deliveries": rows, "trace": hops})
        return
    # Taken on the national axis's face: unsigned, or deviating from QCVN 102 (recorded).
    notes = next((r.get("notes") for r in rows if r.get("notes")), None)
    title = f"package {package_id}" + (f"\nnotes: {notes}" if notes else "")
    table = Table(title=title)
    columns = ("To", "State", "Status", "Mark", "Updated", "Push attempts", "Last error")
    for column in columns:
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(
            r["to"],
            r["state"],
            _status_text(r["status_code"]),
            r.get("mark") or "",
            r["updated_at"],
            str(r["attempts"]) if r["attempts"] else "",
            r["last_error"] or "",
        )
    trace = Table(title="trace (kept by the hub, outside the signed package)")
    for column in ("At", "OrganId", "Event", "Detail"):
        trace.add_column(column, overflow="fold")
    for h in hops:
        trace.add_row(h["at"], h["organ_id"], h["event"], h["detail"] or "")
    console = Console()
    console.print(table)
    console.print(trace)


def _status_text(code: str | None) -> str:
    if code is None:
        return ""
    return f"{code} {STATUS_CODES[code]}" if code in STATUS_CODES else code


@main.command()
@click.argument("package_id")
@click.option(
    "--code",
    required=True,
    type=click.Choice(sorted(STATUS_CODES)),
    help="The status code (01 đã đến … 06 hoàn thành; 13/15/16 for take-back and updates).",
)
@click.option("--description", default=None, help="A note for the other party.")
@click.option(
    "--to",
    "to",
    default=None,
    metavar="ORGAN_ID",
    help="With 13: the recipient asked to take the document back (needed when it has several).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the hub's answer as JSON.")
@click.pass_context
def status(
    ctx: click.Context,
    package_id: str,
    code: str,
    description: str | None,
    to: str | None,
    as_json: bool,
) -> None:
    """Answer a received package with a business status (01 also acknowledges it); or, as
    its sender, ask a recipient to take it back (13, --to RECIPIENT), who answers 15 or 16."""
    if to is not None and code != "13":
        raise click.UsageError("--to is for 13; every other status answers the sender")
    sent = run(ctx, lambda node: node.status(package_id, code, description, to))
    if as_json:
        emit(sent.answer)
        return
    click.echo(
        f"Status {code} ({STATUS_CODES[code]}) sent to {', '.join(sent.answer['recipients'])}"
        f" for {sent.answer['document_id']}"
    )


@main.command()
@click.argument("package_id")
@click.option("--reason", default=None, help="Why it is recalled (BussinessDocReason).")
@click.option("--json", "as_json", is_flag=True, help="Print the hub's answer as JSON.")
@click.pass_context
def recall(ctx: click.Context, package_id: str, reason: str | None, as_json: bool) -> None:
    """Recall (thu hồi) a document this agency sent: recipients that have not fetched it yet
    lose it from their inbox; the others are asked to answer 03 (agree) or 02 (refuse)."""
    sent = run(ctx, lambda node: node.recall(package_id, reason))
    if as_json:
        emit(sent.answer)
        return
    click.echo(
        f"Recall of {sent.answer['document_id']} sent to {', '.join(sent.answer['recipients'])}"
    )


_files = click.option(
    "--file",
    "files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An attachment (repeat); they replace the document's attachments.",
)
_to = click.option(
    "--to", "to", multiple=True, metavar="ORGAN_ID", help="Who receives it now (repeat)."
)


@main.command()
@click.argument("package_id")
@click.option("--subject", default=None, help="The corrected subject (trích yếu).")
@_files
@_to
@click.option("--reason", default=None, help="Why (BussinessDocReason).")
@click.option("--json", "as_json", is_flag=True, help="Print the hub's answer as JSON.")
@click.pass_context
def update(
    ctx: click.Context,
    package_id: str,
    subject: str | None,
    files: tuple[Path, ...],
    to: tuple[str, ...],
    reason: str | None,
    as_json: bool,
) -> None:
    """Update (cập nhật, BussinessDocType 2) a document this agency sent: its subject or
    files (DocumentInfo), or who receives it (--to: DocumentReceiver). It keeps its
    DocumentId; recipients answer 15 (agree) or 16 (refuse)."""
    if subject is None and not files and not to:
        raise click.UsageError("say what the update changes: --subject, --file or --to")
    sent = run(
        ctx,
        lambda node: node.update(package_id, subject=subject, files=files, to=to, reason=reason),
    )
    if as_json:
        emit(sent.answer)
        return
    click.echo(
        f"Update of {sent.answer['document_id']} sent to {', '.join(sent.answer['recipients'])}"
    )


@main.command("replace")
@click.argument("package_id")
@click.option("--subject", required=True, help="The replacing document's subject.")
@_files
@_to
@click.option("--reason", default=None, help="Why (BussinessDocReason).")
@click.option("--json", "as_json", is_flag=True, help="Print the hub's answer as JSON.")
@click.pass_context
def replace_document(
    ctx: click.Context,
    package_id: str,
    subject: str,
    files: tuple[Path, ...],
    to: tuple[str, ...],
    reason: str | None,
    as_json: bool,
) -> None:
    """Replace (thay thế, BussinessDocType 3) a document this agency sent with a new one: a
    number and DocumentId of its own, ReplacementInfo naming the one replaced, sent to --to
    or else to the replaced document's recipients."""
    sent = run(ctx, lambda node: node.replace(package_id, subject, files, to=to, reason=reason))
    if as_json:
        emit(sent.answer)
        return
    click.echo(
        f"Sent {sent.answer['document_id']}, replacing the document of package {package_id},"
        f" to {', '.join(sent.answer['recipients'])}"
    )


@main.command()
@click.option("--port", type=click.IntRange(0, 65535), required=True, help="Port on 127.0.0.1.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where packages are written (default PROFILE/received).",
)
@click.option("--allow-sha1", is_flag=True, help="Accept SHA-1 signatures (old agency software).")
@click.pass_context
def listen(ctx: click.Context, port: int, out: Path | None, allow_sha1: bool) -> None:
    """Serve this agency's push endpoint: register it with
    `axis agency add ORGAN_ID --endpoint https://127.0.0.1:PORT/`."""
    try:
        profile = resolve(ctx.obj["profile"])
        runtime.run(listen_forever(profile, port, out or profile.received, allow_sha1))
    except (AxisError, OSError) as exc:
        click.echo(f"axis-node: {exc}", err=True)
        sys.exit(1)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def agencies(ctx: click.Context, as_json: bool) -> None:
    """The hub's agency directory."""
    rows = run(ctx, lambda node: node.agencies())
    if as_json:
        emit(rows)
        return
    table = Table(title=f"{len(rows)} agencies")
    for column in ("OrganId", "Name", "Active", "Other codes"):
        table.add_column(column)
    for r in rows:
        others = [c for c in r.get("codes", []) if c != r["organ_id"]]
        others += [f"{c} (closed: {s})" for c, s in r.get("closed", {}).items()]
        table.add_row(
            r["organ_id"], r["name"], "yes" if r["active"] else "revoked", ", ".join(others)
        )
    Console().print(table)
