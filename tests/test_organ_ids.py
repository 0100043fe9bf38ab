"""Both generations of OrganId through a real hub over real TLS: the QCVN 102:2016 form
(``000.00.00.G22``) and the Decision 20/2020 identifier (``G22``, ``H37.02.02``, up to 35
characters), an agency holding both, and codes closed when bodies merge."""

from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner, Result

from axis.cli import main
from axis.core import formats, pki
from axis.core.formats import Edoc, Organ
from axis.errors import AxisError
from axis.host import datadir
from axis.host.datadir import DataDir
from axis.usecases import registration
from nodes.client import NodeClient
from tests.conftest import LiveHub, live_hub
from tests.helpers import assert_problem, counts

G22, H41, H10 = "000.00.00.G22", "000.00.00.H41", "000.00.00.H10"
H53_2016, H53 = "000.00.00.H53", "H53.01"


def qd20(length: int) -> str:
    """A Decision 20 code of ``length`` characters (3 to 35): H41, then dotted groups."""
    code = "H41"
    while len(code) < length:
        code += "." + "7A3B9C1D2E"[: min(10, length - len(code) - 1)]
    assert len(code) == length and formats.organ_id_form(code) is formats.OrganIdForm.DECISION_20
    return code


def edoc_as(node: NodeClient, sender: str, to: list[str], number: int) -> bytes:
    """An edoc from ``node``'s agency with ``sender`` in From and its DocumentId (another of
    its codes, say), signed with its key."""
    built = formats.parse_package(formats.load_xml(node.build_edoc(to, "Công văn", number=number)))
    assert isinstance(built, Edoc)
    day = built.promulgation_date
    edoc = dataclasses.replace(
        built,
        sender=Organ(sender, built.sender.organ_name),
        document_id=formats.make_document_id(sender, day, str(number), "CV"),
        traces=(),
    )
    return node.signer.sign(formats.build_edoc(edoc))


async def test_an_agency_holding_both_codes_receives_by_either_once(hub: LiveHub) -> None:
    await hub.register(H53_2016, "UBND tỉnh Tây Ninh", aliases=(H53,))
    sender, recipient = hub.client(G22), hub.client(H53_2016)
    by_new = await sender.send([H53], "Gửi theo mã định danh mới", number=1)
    by_old = await sender.send([H53_2016], "Gửi theo mã cũ", number=2)
    by_both = await sender.send([H53, H53_2016, H41], "Gửi theo cả hai mã", number=3)
    assert by_new.answer["recipients"] == by_old.answer["recipients"] == [H53_2016]
    assert by_both.answer["recipients"] == [H53_2016, H41]  # once, by the code it is filed under
    inbox = (await recipient.inbox())["items"]
    assert [i["id"] for i in inbox] == [s.answer["id"] for s in (by_new, by_old, by_both)]
    assert [d["to"] for d in await sender.track(by_both.answer["id"])] == [H41, H53_2016]
    assert counts(hub.data) == (3, 4)
    # It answers; the document's sender sees the status on its one delivery.
    await recipient.status(by_both.answer["id"], "03")
    tracked = {d["to"]: d["status_code"] for d in await sender.track(by_both.answer["id"])}
    assert tracked == {H53_2016: "03", H41: None}
    directory = {a["organ_id"]: a for a in await sender.agencies()}
    assert directory[H53_2016]["codes"] == [H53_2016, H53]
    assert directory[G22]["codes"] == [G22] and directory[G22]["closed"] == {}


async def test_an_agency_sends_under_either_code(hub: LiveHub) -> None:
    """From and DocumentId may name the agency's other code: the hub files the package under
    the agency, and a recipient's node checks the signing certificate (which names the 2016
    code) against the directory."""
    await hub.register(H53_2016, "UBND tỉnh Tây Ninh", aliases=(H53,))
    sender, recipient = hub.client(H53_2016), hub.client(G22)
    package = edoc_as(sender, H53, [G22], 4)
    sent = await sender.post_package(package)
    assert sent.answer["document_id"].startswith(f"{H53},")
    (item,) = (await recipient.inbox())["items"]
    assert item["from"] == H53_2016
    received = await recipient.edoc(item["id"])  # fetches the directory to check the signer
    assert received.sender.organ_id == H53
    # A follow-up names the document by the DocumentId it was sent with.
    recall = await sender.post_package(
        sender.build_followup(received, formats.BusinessDocType.RECALL, "Sai số")
    )
    assert recall.answer["recipients"] == [G22]
    # An agency that does not hold the code cannot send under it.
    with pytest.raises(AxisError) as exc:
        await hub.client(H41).post_package(edoc_as(hub.client(H41), H53, [G22], 5))
    assert_problem(exc, "sender-mismatch", 403)


async def test_a_certificate_may_name_either_code(staffed: DataDir) -> None:
    """An outside CA's certificate naming the Decision 20 code registers an agency filed under
    its 2016 code; what it signs verifies at the hub and at the recipient."""
    ca_key, ca_cert = pki.create_ca("Government CA (test)")
    datadir.trust_ca(staffed, pki.cert_to_pem(ca_cert))  # before the hub starts: TLS trusts it
    # The recipient trusts what the hub trusts (the CA bundle of its profile, handed out anew).
    (staffed.profile(G22) / "ca.pem").write_bytes(staffed.trust_store().bundle_pem())
    async with live_hub(staffed) as hub:
        key, cert = pki.issue_agency_cert(ca_key, ca_cert, H53, "UBND tỉnh Tây Ninh")
        await registration.register(
            hub.data,
            hub.running.hub.store,
            H53_2016,
            "UBND tỉnh Tây Ninh",
            hub_url=hub.running.url,
            aliases=(H53,),
            cert_pem=pki.cert_to_pem(cert),
        )
        pki.write_private(hub.data.profile(H53_2016) / "key.pem", pki.key_to_pem(key))
        _, other = pki.issue_agency_cert(ca_key, ca_cert, "H53.02", "Khác")
        with pytest.raises(AxisError, match=r"belongs to H53\.02, not 000\.00\.00\.H54 or H54"):
            await hub.register("000.00.00.H54", aliases=("H54",), cert_pem=pki.cert_to_pem(other))
        sender = hub.client(H53_2016)
        sent = await sender.send([G22], "Ký bằng chứng thư mang mã mới", number=6)
        # The recipient's node checks the signer: a certificate naming H53.01 for a package
        # from 000.00.00.H53, which the directory says is one agency.
        received = await hub.client(G22).edoc(sent.answer["id"])
        assert received.sender.organ_id == H53_2016


@pytest.mark.parametrize("length", [3, 6, 18, 35])
async def test_decision_20_codes_end_to_end(hub: LiveHub, length: int) -> None:
    code = qd20(length)
    await hub.register(code, f"Cơ quan {length}")
    agency, g22 = hub.client(code), hub.client(G22)
    inbound = await g22.send([code], "Đến mã định danh", number=10 + length)
    assert inbound.answer["recipients"] == [code]
    received = await agency.edoc(inbound.answer["id"])
    assert received.recipients[0].organ_id == code
    await agency.status(inbound.answer["id"], "01")
    assert (await g22.track(inbound.answer["id"]))[0]["state"] == "acknowledged"
    outbound = await agency.send([G22], "Từ mã định danh", number=1)
    assert outbound.answer["document_id"].startswith(f"{code},")
    items = (await g22.inbox())["items"]
    assert [(i["kind"], i["from"]) for i in items] == [("status", code), ("edoc", code)]
    item = items[1]
    back = await g22.edoc(item["id"])
    assert back.sender.organ_id == code
    await g22.status(item["id"], "02")  # a status from the recipient
    status = (await agency.inbox())["items"][-1]
    assert status["kind"] == "status" and status["from"] == G22


async def test_a_closed_code_is_refused_naming_its_successor(hub: LiveHub) -> None:
    """Decision 09/2025/QĐ-TTg closed the codes of merged provinces: a package to a closed
    code is refused naming the code that succeeds it, and nothing is stored; the agency's
    other codes still reach it, and it cannot send under the closed one."""
    await hub.register(H53_2016, "UBND tỉnh Tây Ninh", aliases=(H53, "H28"))
    store = hub.running.hub.store
    await registration.close_code(store, "H28", "H53.01")
    await registration.close_code(store, "H33", "H53.01")  # a code no agency here held
    sender = hub.client(G22)
    for closed in ("H28", "H33"):
        with pytest.raises(AxisError) as exc:
            await sender.send([H41, closed], "Gửi mã đã đóng", number=20)
        assert_problem(exc, "unknown-recipient", 422)
        assert f"To/OrganId {closed} is closed: H53.01 succeeds it" in str(exc.value)
    assert counts(hub.data) == (0, 0)
    sent = await sender.send([H53], "Gửi mã kế thừa", number=21)
    assert sent.answer["recipients"] == [H53_2016]
    with pytest.raises(AxisError) as exc:
        node = hub.client(H53_2016)
        await node.post_package(edoc_as(node, "H28", [G22], 22))
    assert_problem(exc, "not-allowed", 403)
    assert "From/OrganId H28 is closed: H53.01 succeeds it" in str(exc.value)
    directory = {a["organ_id"]: a for a in await sender.agencies()}
    assert directory[H53_2016]["codes"] == [H53_2016, H53]
    assert directory[H53_2016]["closed"] == {"H28": "H53.01"}


@pytest.mark.parametrize(
    "code",
    ["28.22.H17", "H4", "h41.01", "H41.", "H41..01", "000.00.00.h41", "H41.01-02", qd20(35) + "9"],
)
async def test_malformed_codes_are_refused_naming_the_element(hub: LiveHub, code: str) -> None:
    sender = hub.client(G22)
    built = formats.parse_package(formats.load_xml(sender.build_edoc([H41], "x", number=30)))
    assert isinstance(built, Edoc)
    bad = dataclasses.replace(built, recipients=(Organ(code, "Cơ quan"),), traces=())
    with pytest.raises(AxisError) as exc:
        await sender.post_package(sender.signer.sign(formats.build_edoc(bad, check=False)))
    assert_problem(exc, "schema-violation", 422)
    assert "To/OrganId" in str(exc.value)
    assert counts(hub.data) == (0, 0)
    with pytest.raises(AxisError, match="is not an OrganId"):
        await hub.register(code)
    with pytest.raises(AxisError, match="is not an OrganId"):
        await hub.register("000.00.00.H60", aliases=(code,))
    with pytest.raises(AxisError, match="is not an OrganId"):
        await registration.close_code(hub.running.hub.store, code, H53)
    # The hub still serves: a bystander's exchange goes through.
    assert (await hub.client(H10).send([H41], "Vẫn gửi được", number=31)).created


def test_codes_from_the_command_line(data: DataDir) -> None:
    """``axis agency add --code``, ``axis agency code add | close``, ``axis agency list``,
    in process against the data folder's SQLite file."""
    runner = CliRunner()

    def axis(*args: str, ok: bool = True) -> Result:
        result = runner.invoke(main, [*args, "--data", str(data.root)])
        assert (result.exit_code == 0) == ok, result.output
        return result

    added = axis("agency", "add", H53_2016, "--name", "UBND tỉnh Tây Ninh", "--code", H53)
    assert f"also holds    {H53}" in added.output
    axis("agency", "add", "H28", "--name", "UBND tỉnh Bình Phước (cũ)")
    assert "now holds H28.05" in axis("agency", "code", "add", "H28", "H28.05").output
    taken = axis("agency", "code", "add", "H28", H53, ok=False)
    assert f"code {H53} is held by {H53_2016}" in taken.output
    closed = axis("agency", "code", "close", "H28", "--successor", H53).output
    assert f"Closed H28 (held by H28); {H53} succeeds it" in closed
    axis("agency", "code", "close", "H28", "--successor", "H41", ok=False)
    axis("agency", "code", "close", "28.22.H17", "--successor", "H41", ok=False)
    axis("agency", "code", "add", "H99", "H99.01", ok=False)  # no such agency
    listed = json.loads(axis("agency", "list", "--json").output)
    assert [(a["organ_id"], a["codes"], a["closed"]) for a in listed] == [
        (H53_2016, [H53_2016, H53], {}),
        ("H28", ["H28.05"], {"H28": H53}),
    ]
    table = axis("agency", "list").output
    assert "H28 (closed: H53.01)" in table and "H28.05" in table
    # Every code the directory holds and closed is what the log says.
    assert "intact" in axis("log", "verify").output.lower()
