"""Both faces at once, over real sockets: a system's agency (on the national axis's API, with
VNPT's SDK's behaviour) and native agencies (axis-node's client over TLS) exchange documents
and statuses through one hub, and the log still proves everything after."""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from axis.core import formats, pki, vdxp
from axis.core.formats import Organ, ResponseFor, StatusNotice
from axis.errors import AxisError
from axis.host import datadir
from axis.host.datadir import DataDir
from axis.store.base import Agency, System
from axis.store.sqlite import SqliteStore
from axis.usecases.verification import verify_log
from nodes.vdxp import VdxpClient
from tests.conftest import LiveHub, live_hub
from tests.helpers import FIELD, VDXP

SYSTEM, SECRET = "00.53.W00", "s3cret-of-the-centre"
G09, G22, H29, H41 = "000.00.00.G09", "000.00.00.G22", "000.00.00.H29", "000.00.00.H41"


@dataclass
class Exchange:
    live: LiveHub
    sdk: VdxpClient


def configure_text(data: DataDir, **values: str) -> None:
    """Set string keys of DATA/axis.toml (each there as ``key = ""``)."""
    for key, value in values.items():
        datadir.set_setting(data, key, value)


@pytest.fixture
async def exchange(data: DataDir) -> AsyncIterator[Exchange]:
    await enrol_g09(data)
    async with live_hub(data, vdxp=True) as live:
        await live.register(H29, "UBND Thành phố Hà Nội")
        async with VdxpClient(live.running.vdxp_url(), SYSTEM, SECRET) as sdk:
            yield Exchange(live, sdk)


async def enrol_g09(data: DataDir) -> None:
    """The system, and G09, which it registered (no certificate)."""
    store = SqliteStore(data.database)
    await store.open()
    try:
        sealed = vdxp.seal(SECRET, data.systems_key_bytes(), SYSTEM)
        await store.add_system(System(SYSTEM, "Trung tâm tích hợp", sealed, datetime.now(UTC)))
        await store.add_agency(
            Agency(G09, "Bộ Tài chính", b"", f"system:{SYSTEM}:{G09}", datetime.now(UTC),
                   system_id=SYSTEM)
        )  # fmt: skip
    finally:
        await store.close()


async def test_a_field_package_and_its_answers_travel_between_the_two_faces(
    exchange: Exchange,
) -> None:
    live, sdk = exchange.live, exchange.sdk
    h41 = live.client(H41)
    # 1. The system's G09 sends VNPT's J1_new as the SDK writes it (placeholder signature),
    #    to H29 and H41, both on the native face; `from` is the system itself, as gateways do.
    body = (FIELD / "vnpt-sdk-output/J1_new_placeholder.edxml").read_bytes()
    sent = await sdk.send_edoc(body, SYSTEM)
    sent.raise_for_fail()
    doc_id = str(sent.fields["DocId"])
    assert "unsigned" in sent.error_desc
    # 2. H41 sees it in its inbox, told how it came; fetches the exact bytes; acknowledges;
    #    answers 03 (its node reads the package as the hub vouched for it).
    (item,) = [i for i in await h41.inbox_all() if i["id"] == doc_id]
    assert item["from"] == G09 and "unsigned" in item["notes"] and SYSTEM in item["notes"]
    assert await h41.get(doc_id) == body
    await h41.ack(doc_id)
    answer = (await h41.status(doc_id, "03", "Đã tiếp nhận")).answer
    assert answer["recipients"] == [G09]
    # 3. The system lists the status, fetches it, marks it done.
    listed = await sdk.get_received_edoc_list(messagetype="status")
    (status_item,) = listed.fields["data"]
    assert (status_item["docId"], status_item["from"], status_item["to"]) == (
        answer["id"], H41, G09,
    )  # fmt: skip
    status_bytes = await sdk.get_edoc(answer["id"])
    notice = formats.parse_package(formats.load_xml(status_bytes))
    assert isinstance(notice, StatusNotice) and notice.status_code == "03"
    (await sdk.update_status(answer["id"], "done")).raise_for_fail()
    assert (await sdk.get_received_edoc_list(messagetype="status")).fields["data"] == []
    # 4. getSentEdocList: each recipient's state, as the SDK reads it.
    rows = {r["toCode"]: r for r in (await sdk.get_sent_edoc_list(doc_id)).fields["data"]}
    assert (rows[H41]["receiveStatus"], rows[H41]["statusCode"]) == ("done", "03")
    assert rows[H29]["receiveStatus"] == "initial"
    track = await live.running.hub.store.deliveries(doc_id)
    assert {d.recipient: d.state.value for d in track} == {H41: "acknowledged", H29: "queued"}
    hub_cert = pki.load_cert(live.data.hub_cert.read_bytes())
    assert (await verify_log(live.running.hub.store, hub_cert)).ok


async def test_a_native_document_reaches_the_system_and_its_answer_comes_back(
    exchange: Exchange,
) -> None:
    live, sdk = exchange.live, exchange.sdk
    g22 = live.client(G22)
    original = (await g22.send([G09], "Đề nghị phối hợp")).answer
    waiting = await sdk.get_received_edoc_list()
    assert [i["docId"] for i in waiting.fields["data"]] == [original["id"]]
    assert (await sdk.count_receive_edoc()).fields["count"] == 1
    fetched = await sdk.get_edoc(original["id"])
    edoc = await g22.verified(fetched)  # what the system got is what G22 signed
    assert isinstance(edoc, formats.Edoc)
    (await sdk.update_status(original["id"], "done")).raise_for_fail()
    assert (await sdk.count_receive_edoc()).fields["count"] == 0
    # The system answers 03 with a status package of its own software (unsigned, as the
    # SDK's are), sent with sendEdoc; it goes to G22 by ResponseFor.
    status = StatusNotice(
        sender=Organ(G09, "Bộ Tài chính"),
        response_for=ResponseFor(
            G22, f"{edoc.code_number}/{edoc.code_notation}", edoc.promulgation_date,
            edoc.document_id,
        ),
        status_code="03",
        timestamp=datetime(2026, 12, 3, 9, 0),
    )  # fmt: skip
    unsigned = formats.to_bytes(formats.build_status(status))
    sent = await sdk.send_edoc(unsigned, G09, messagetype="status")
    sent.raise_for_fail()
    items = [i for i in await g22.inbox_all() if i["kind"] == "status"]
    assert [(i["id"], i["from"]) for i in items] == [(sent.fields["DocId"], G09)]
    assert "unsigned" in items[0]["notes"]
    (row,) = await g22.track(original["id"])
    assert (row["to"], row["state"], row["status_code"], row["mark"]) == (
        G09, "acknowledged", "03", "done",
    )  # fmt: skip
    # Everything both faces did is in the log, and the log holds.
    hub_cert = pki.load_cert(live.data.hub_cert.read_bytes())
    report = await verify_log(live.running.hub.store, hub_cert)
    assert report.ok, report.problem


async def test_the_face_speaks_tls_when_a_certificate_is_configured(data: DataDir) -> None:
    """[vdxp] tls_cert/tls_key: the same API over HTTPS (here with the hub's own pair)."""
    await enrol_g09(data)
    configure_text(data, tls_cert=str(data.hub_cert), tls_key=str(data.hub_key))
    async with live_hub(data, vdxp=True) as live:
        context = ssl.create_default_context(cafile=str(data.ca_cert))
        prefix = live.running.hub.settings.vdxp.path_prefix
        url = f"https://localhost:{live.running.vdxp_port}{prefix}"
        async with VdxpClient(url, SYSTEM, SECRET, ssl_context=context) as sdk:
            counted = await sdk.count_receive_edoc()
            assert (counted.status, counted.fields["count"]) == ("OK", 0)
        async with VdxpClient(url.replace("https", "http"), SYSTEM, SECRET) as plain:
            with pytest.raises(AxisError):  # plain HTTP to a TLS listener gets no answer
                await plain.count_receive_edoc()


async def test_a_native_agency_answers_a_document_the_gateway_sent_with_a_uuid(
    exchange: Exchange,
) -> None:
    """The gateway's own package (a UUID DocumentId, unsigned): H41, on the native face,
    answers it, and the answer reaches the system, found by that UUID."""
    live, sdk = exchange.live, exchange.sdk
    h41 = live.client(H41)
    body = (VDXP / "gateway-bodies" / "request-5.edxml").read_bytes().removesuffix(b"\r\n")
    sent = await sdk.send_edoc(body, SYSTEM)
    sent.raise_for_fail()
    doc_id = str(sent.fields["DocId"])
    answer = (await h41.status(doc_id, "03", "Đã tiếp nhận")).answer
    assert answer["recipients"] == [G09]
    (item,) = (await sdk.get_received_edoc_list(messagetype="status")).fields["data"]
    notice = formats.parse_package(formats.load_xml(await sdk.get_edoc(item["docId"])))
    assert isinstance(notice, StatusNotice)
    assert notice.response_for.document_id == "4eff58d4-7295-4430-9670-20399763210e"
    rows = (await sdk.get_sent_edoc_list(doc_id)).fields["data"]
    assert [(r["toCode"], r["statusCode"]) for r in rows] == [(H41, "03")]
    # A status naming a DocumentId of no form the hub holds is still refused by its rule.
    h10 = live.client("000.00.00.H10")
    bogus = dataclasses.replace(
        notice,
        sender=Organ("000.00.00.H10", "UBND tỉnh Điện Biên"),
        response_for=dataclasses.replace(notice.response_for, document_id="no-such-uuid"),
    )
    with pytest.raises(AxisError) as refused:
        await h10.post_package(h10.signer.sign(formats.build_status(bogus)))
    assert refused.value.problem_name == "schema-violation"
    assert "ResponseFor/DocumentId" in refused.value.detail
