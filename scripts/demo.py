"""`make demo`: a short scripted exchange between a few agencies through a real hub.

It initialises a fresh data folder in ./demo-data, registers five agencies (one with a push
endpoint), starts the hub on loopback with real TLS, and lets them send signed edXML packages
(one with an attachment), receive them by pull and by push, answer with business statuses and
recall one. It prints what happened at each step.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from axis.core import formats, pki
from axis.core.receipt import verify_receipt
from axis.errors import AxisError
from axis.host import datadir
from axis.host.datadir import DataDir
from axis.http.sockets import free_port
from axis.usecases import registration
from axis.web.app import running_hub
from nodes.client import NodeClient
from nodes.listen import listening
from nodes.profile import Profile

AGENCIES = {
    "000.00.00.G22": "Văn phòng Chính phủ",
    "000.00.00.G12": "Bộ Nội vụ",
    "000.00.00.H29": "UBND thành phố Hà Nội",
    "000.00.00.H41": "UBND tỉnh Nghệ An",
    "000.00.00.H58": "UBND Thành phố Hồ Chí Minh",
}
PUSHED = "000.00.00.H58"  # this agency runs a push endpoint (axis-node listen) in the demo
console = Console()


async def main(root: Path) -> int:
    shutil.rmtree(root, ignore_errors=True)
    data = DataDir(root)
    datadir.init(data)
    console.print(f"[bold]Axis demo[/bold]: data folder {root}")
    settings = data.settings().with_overrides(port=0, admin_port=0)
    push_port = free_port()
    async with running_hub(data, settings) as running:
        console.print(f"Hub listening on {running.url} (TLS, client certificates)")
        for organ_id, name in AGENCIES.items():
            endpoint = f"https://127.0.0.1:{push_port}/" if organ_id == PUSHED else None
            await registration.register(
                data, running.hub.store, organ_id, name, hub_url=running.url, endpoint=endpoint
            )
        console.print(
            f"Registered {len(AGENCIES)} agencies, each with its own certificate;"
            f" {PUSHED} gets pushes at https://127.0.0.1:{push_port}/"
        )
        nodes = {o: NodeClient(Profile.load(data.profile(o))) for o in AGENCIES}
        pushed_profile = Profile.load(data.profile(PUSHED))
        try:
            async with listening(pushed_profile, push_port, pushed_profile.received):
                return await exchange(data, nodes, pushed_profile.received)
        finally:
            for node in nodes.values():
                await node.close()


async def wait_for(path: Path, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists():
            return True
        await asyncio.sleep(0.05)
    return False


async def exchange(data: DataDir, nodes: dict[str, NodeClient], pushed_dir: Path) -> int:
    hub_cert = pki.load_cert(data.hub_cert.read_bytes())
    attachment = data.root / "ke-hoach.pdf"
    attachment.write_bytes(b"%PDF-1.4\n% Ke hoach chuyen doi so 2026\n" + b"0" * 20_000)
    table = Table(title="What happened")
    for column in ("Step", "Agency", "Result"):
        table.add_column(column, overflow="fold")
    gov = nodes["000.00.00.G22"]
    provinces = ["000.00.00.H29", "000.00.00.H41", PUSHED]
    started = time.perf_counter()
    sent = await gov.send(provinces, "V/v triển khai kế hoạch chuyển đổi số năm 2026", [attachment])
    doc_id = sent.answer["id"]
    receipt = verify_receipt(sent.answer["receipt"], hub_cert)
    table.add_row("send", "G22", f"{sent.answer['document_id']} → {len(provinces)} provinces")
    table.add_row("receipt", "G22", f"signed by the hub, sha256 {receipt.sha256[:16]}…")
    again = await gov.post_package(await gov.get(doc_id))
    table.add_row("resend", "G22", f"{'201' if again.created else '200'}: the same answer, no copy")
    if await wait_for(pushed_dir / f"{doc_id}.xml"):
        table.add_row("push", PUSHED[-3:], f"written by axis-node listen to {pushed_dir.name}/")
    for organ_id in provinces[:2]:
        node = nodes[organ_id]
        for item in (await node.inbox())["items"]:
            body = await node.get(item["id"])
            edoc = node.read(body)
            assert isinstance(edoc, formats.Edoc)
            await node.ack(item["id"])
            table.add_row(
                "fetch+ack",
                organ_id[-3:],
                f"{edoc.subject[:40]}…, {len(edoc.attachments)} attachment(s), {len(body)} bytes",
            )
    await nodes["000.00.00.H41"].status(doc_id, "03", "Đã vào sổ văn bản đến")
    await nodes[PUSHED].status(doc_id, "01")
    table.add_row("status", "H41, H58", "03 đã tiếp nhận; 01 đã đến (which also acknowledges)")

    ministry = nodes["000.00.00.G12"]
    wrong = await gov.send(["000.00.00.G12"], "Văn bản gửi nhầm")
    recall = await gov.recall(wrong.answer["id"], "Gửi nhầm cơ quan")
    waiting = [i["id"] for i in (await ministry.inbox())["items"]]
    table.add_row(
        "recall",
        "G22",
        f"before G12 fetched it: G12's inbox holds {len(waiting)} item, the recall notice"
        if waiting == [recall.answer["id"]]
        else f"G12's inbox: {waiting}",
    )
    await ministry.status(recall.answer["id"], "03", "Đồng ý thu hồi")
    table.add_row("status", "G12", "03: agrees to the recall")
    try:
        await ministry.get(doc_id)
    except AxisError as exc:
        table.add_row("read other's", "G12", f"refused: {exc.headline()}")
    try:
        await gov.send(["000.00.00.Z99"], "Gửi tới cơ quan không tồn tại")
    except AxisError as exc:
        table.add_row("bad recipient", "G22", f"refused: {exc.headline()}")
    states = await gov.track(doc_id)
    table.add_row(
        "track",
        "G22",
        ", ".join(f"{d['to'][-3:]} {d['state']} {d['status_code'] or ''}".strip() for d in states),
    )
    console.print(table)
    elapsed = time.perf_counter() - started
    console.print(
        f"[green]Done[/green] in {elapsed:.2f} s: 2 documents, 1 recall and 3 statuses exchanged;"
        f" {sum(d['state'] == 'acknowledged' for d in states)}/{len(states)} recipients"
        " acknowledged the first document."
    )
    console.print(
        f"Data folder kept at {data.root}: try `.venv/bin/axis agency list --data {data.root}`."
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(Path("demo-data").resolve())))
