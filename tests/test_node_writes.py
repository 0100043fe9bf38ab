"""What ``axis-node send``, ``update``, ``replace`` and ``status`` write, read as the field's
software reads it: each recipient by its registered name in ``To/OrganName``, ``From`` with
the agency's name and the details of its profile, an update's ``BussinessDocumentInfo``, a
replacement's ``ReplacementInfo``; and where the hub routes each.

The commands run in process (click's runner, on a thread of their own: each runs its own
event loop) against a real hub over real TLS."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from lxml import etree

from axis.core import formats
from axis.core.formats import BusinessDocType, Edoc
from nodes.cli import main
from tests.conftest import AGENCIES, LiveHub

G22, H41, H10 = "000.00.00.G22", "000.00.00.H41", "000.00.00.H10"
NS = "{http://www.mic.gov.vn/TBT/QCVN_102_2016}"
DETAILS = """organization_in_charge = "Chính phủ"
address = "16 Lê Hồng Phong, Ba Đình, Hà Nội"
email = "vanthu@chinhphu.vn"
telephone = "024 3825 8261"
"""


async def axis_node(hub: LiveHub, organ_id: str, *args: str) -> dict[str, Any]:
    """Run ``axis-node --profile PROFILE ARGS --json`` as the agency; its JSON answer."""
    profile = hub.data.profile(organ_id)

    def invoke() -> Any:
        return CliRunner().invoke(main, ["--profile", str(profile), *args, "--json"])

    result = await asyncio.to_thread(invoke)
    assert result.exit_code == 0, result.output
    answer: dict[str, Any] = json.loads(result.output)
    return answer


def point_at(hub: LiveHub, organ_id: str, extra: str = "") -> None:
    """The agency's node.toml, pointing at this hub (the template's names another port)."""
    toml = hub.data.profile(organ_id) / "node.toml"
    redefined = {"hub", *(line.split("=")[0].strip() for line in extra.splitlines() if line)}
    kept = [
        line
        for line in toml.read_text(encoding="utf-8").splitlines()
        if line.split("=")[0].strip() not in redefined
    ]
    toml.write_text(
        "\n".join([f'hub = "{hub.running.url}"', *kept, extra]) + "\n", encoding="utf-8"
    )


async def fetched(hub: LiveHub, organ_id: str, package_id: str) -> tuple[etree._Element, Edoc]:
    node = hub.client(organ_id)
    body = await node.get(package_id)
    edoc = await node.edoc(package_id)  # verified, as the recipient's software would
    return formats.load_xml(body), edoc


def names_in_to(root: etree._Element) -> dict[str, str]:
    return {
        to.findtext(f"{NS}OrganId") or "": to.findtext(f"{NS}OrganName") or ""
        for to in root.iter(f"{NS}To")
    }


async def test_send_update_replace_write_what_the_field_reads(hub: LiveHub, tmp_path: Path) -> None:
    for organ_id in (G22, H41, H10):
        point_at(hub, organ_id, DETAILS if organ_id == G22 else "")
    plan = tmp_path / "ke-hoach.pdf"
    plan.write_bytes(b"%PDF-1.7 ke hoach " * 100)

    sent = await axis_node(
        hub, G22, "send", "--to", H41, "--to", H10, "--subject", "Kế hoạch", "--file", str(plan)
    )
    root, edoc = await fetched(hub, H41, sent["id"])
    assert names_in_to(root) == {H41: AGENCIES[H41], H10: AGENCIES[H10]}
    sender = root.find(f".//{NS}From")
    assert sender is not None
    assert [(c.tag.removeprefix(NS), c.text) for c in sender] == [
        ("OrganId", G22),
        ("OrganName", AGENCIES[G22]),
        ("OrganizationInCharge", "Chính phủ"),
        ("OrganAdd", "16 Lê Hồng Phong, Ba Đình, Hà Nội"),
        ("Email", "vanthu@chinhphu.vn"),
        ("Telephone", "024 3825 8261"),
    ]  # the standard's order: tolerance is for reading
    assert edoc.business.changes is None  # a new document says nothing of changes

    # An update of the subject: every recipient gets it, and it says the document changed.
    updated = await axis_node(
        hub, G22, "update", sent["id"], "--subject", "Kế hoạch (sửa)", "--reason", "Sai chính tả"
    )
    assert sorted(updated["recipients"]) == [H10, H41]
    root, update = await fetched(hub, H41, updated["id"])
    info = root.find(f".//{NS}BussinessDocumentInfo")
    assert info is not None
    assert (info.findtext(f"{NS}DocumentInfo"), info.findtext(f"{NS}DocumentReceiver")) == (
        "1",
        "0",
    )
    # Who gets it has not changed: no ReceiverList, so the hub sends it to the document's
    # recipients still active rather than holding it to a list.
    assert info.find(f"{NS}ReceiverList") is None
    assert update.business.doc_type is BusinessDocType.UPDATE
    assert update.business.document_id == update.document_id == edoc.document_id
    assert update.subject == "Kế hoạch (sửa)" and update.attachments == edoc.attachments
    assert names_in_to(root) == {H41: AGENCIES[H41], H10: AGENCIES[H10]}

    # An update of who receives it: only the receivers it lists get it.
    narrowed = await axis_node(hub, G22, "update", sent["id"], "--to", H41)
    assert narrowed["recipients"] == [H41]
    _, update = await fetched(hub, H41, narrowed["id"])
    changes = update.business.changes
    assert changes is not None
    assert (changes.document_info, changes.document_receiver) == (False, True)
    assert [r.organ_id for r in changes.receivers] == [H41]

    # A replacement: a new document that names the one it replaces, to its OrganIdList.
    replaced = await axis_node(
        hub, G22, "replace", sent["id"], "--subject", "Kế hoạch mới", "--to", H10
    )
    assert replaced["recipients"] == [H10]
    assert replaced["document_id"] != edoc.document_id
    root, replacement = await fetched(hub, H10, replaced["id"])
    assert replacement.business.doc_type is BusinessDocType.REPLACE
    (info_r,) = replacement.business.replacements
    assert (info_r.document_id, info_r.organ_ids) == (edoc.document_id, (H10,))
    assert names_in_to(root) == {H10: AGENCIES[H10]}

    # The sender asks H41 to take the document back (13); H41 agrees (15).
    await axis_node(hub, G22, "status", sent["id"], "--code", "13", "--to", H41)
    (ask,) = [i for i in (await hub.client(H41).inbox())["items"] if i["kind"] == "status"]
    assert ask["from"] == G22
    await axis_node(hub, H41, "status", sent["id"], "--code", "15")
    tracked = {d["to"]: d["status_code"] for d in await hub.client(G22).track(sent["id"])}
    assert tracked == {H41: "15", H10: None}


async def test_an_update_must_change_something(hub: LiveHub) -> None:
    point_at(hub, G22)
    sent = await hub.client(G22).send([H41], "Không đổi gì")
    runner = CliRunner()
    profile = str(hub.data.profile(G22))
    result = await asyncio.to_thread(
        runner.invoke, main, ["--profile", profile, "update", sent.answer["id"]]
    )
    assert result.exit_code != 0 and "say what the update changes" in result.output
    result = await asyncio.to_thread(
        runner.invoke, main, ["--profile", profile, "status", sent.answer["id"], "--code", "13"]
    )
    assert result.exit_code == 0, result.output  # one recipient: --to may be left out


async def test_a_profile_may_write_a_dialect_of_the_field(hub: LiveHub) -> None:
    """node.toml's ``dialect``: the agency's packages come out as that software writes them
    (here the .NET SDK's: a byte order mark, CRLF, DocumentId last), and are taken as such."""
    point_at(hub, G22, 'dialect = "dotnet"')
    sent = await axis_node(hub, G22, "send", "--to", H41, "--subject", "Gửi kiểu .NET")
    body = await hub.client(H41).get(sent["id"])
    assert body.startswith(b"\xef\xbb\xbf") and b"\r\n" in body
    header = formats.load_xml(body).find(f".//{NS}MessageHeader")
    assert header is not None and etree.QName(header[-1]).localname == "DocumentId"
    assert (await hub.client(H41).edoc(sent["id"])).subject == "Gửi kiểu .NET"
    point_at(hub, G22, 'dialect = "cobol"')
    result = await asyncio.to_thread(
        CliRunner().invoke, main, ["--profile", str(hub.data.profile(G22)), "inbox"]
    )
    assert result.exit_code != 0 and "dialect 'cobol' is none of" in result.output
