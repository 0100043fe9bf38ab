"""Business statuses and recalls through a real hub over TLS, with the node client's calls."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime

import pytest

from axis.core import formats
from axis.core.formats import BusinessDocType
from axis.errors import AxisError
from tests.conftest import LiveHub
from tests.helpers import assert_problem

G22, H41, H10 = "000.00.00.G22", "000.00.00.H41", "000.00.00.H10"


async def test_a_status_03_reaches_the_sender_and_shows_in_track(hub: LiveHub) -> None:
    sender, recipient = hub.client(G22), hub.client(H41)
    answer = (await sender.send([H41], "Đề nghị góp ý dự thảo")).answer
    status = (await recipient.status(answer["id"], "03", "Đã vào sổ")).answer
    assert status["kind"] == "status" and status["recipients"] == [G22]
    items = (await sender.inbox())["items"]
    assert [(i["id"], i["kind"], i["from"]) for i in items] == [(status["id"], "status", H41)]
    row = (await sender.track(answer["id"]))[0]
    assert (row["to"], row["state"], row["status_code"]) == (H41, "delivered", "03")
    events = [(h["organ_id"], h["event"], h["detail"]) for h in await sender.trace(answer["id"])]
    assert (H41, "status", "03") in events


async def test_status_01_acknowledges_and_later_codes_follow(hub: LiveHub) -> None:
    sender, recipient = hub.client(G22), hub.client(H41)
    answer = (await sender.send([H41], "Giấy mời họp")).answer
    await recipient.status(answer["id"], "01")
    assert (await recipient.inbox())["items"] == []
    row = (await sender.track(answer["id"]))[0]
    assert (row["state"], row["status_code"]) == ("acknowledged", "01")
    for code in ("03", "04", "05", "06"):
        await recipient.status(answer["id"], code)
    row = (await sender.track(answer["id"]))[0]
    assert (row["state"], row["status_code"]) == ("acknowledged", "06")
    assert len((await sender.inbox())["items"]) == 5


async def test_only_a_recipient_may_send_a_status(hub: LiveHub) -> None:
    sender = hub.client(G22)
    answer = (await sender.send([H41], "Chỉ gửi H41")).answer
    edoc = await sender.edoc(answer["id"])
    outsider = hub.client(H10)
    with pytest.raises(AxisError) as exc:
        await outsider.post_package(outsider.build_status(edoc, "03"))
    assert_problem(exc, "unknown-document", 404)  # as if there were none: nothing leaks
    with pytest.raises(AxisError) as exc:  # and H10 cannot even read it to answer
        await outsider.status(answer["id"], "03")
    assert_problem(exc, "not-allowed", 403)


async def test_a_recall_before_fetch_removes_the_original_from_the_inbox(hub: LiveHub) -> None:
    sender, early, late = hub.client(G22), hub.client(H10), hub.client(H41)
    original = (await sender.send([H41, H10], "Văn bản ban hành nhầm")).answer
    await early.get(original["id"])  # H10 fetched it before the recall; H41 did not
    recall = (await sender.recall(original["id"], "Ban hành nhầm đối tượng")).answer
    assert sorted(recall["recipients"]) == [H10, H41]
    assert recall["document_id"] == original["document_id"]

    late_items = [i["id"] for i in (await late.inbox())["items"]]
    assert late_items == [recall["id"]]  # the original is gone, the recall notice is there
    with pytest.raises(AxisError) as exc:
        await late.get(original["id"])
    assert_problem(exc, "not-allowed", 403)
    early_items = [i["id"] for i in (await early.inbox())["items"]]
    assert early_items == [original["id"], recall["id"]]  # it has it: it must answer

    states = {r["to"]: r["state"] for r in await sender.track(original["id"])}
    assert states == {H41: "recalled", H10: "delivered"}

    # H10 agrees to the recall (03): the code lands on its delivery of the recall.
    recall_edoc = await early.edoc(recall["id"])
    await early.post_package(early.build_status(recall_edoc, "03", "Đồng ý thu hồi"))
    codes = {r["to"]: r["status_code"] for r in await sender.track(recall["id"])}
    assert codes == {H10: "03", H41: None}
    # A second recall of the same document is the same package: idempotent.
    again = await sender.post_package(await sender.get(recall["id"]))
    assert not again.created and again.answer == recall


async def test_only_the_sender_may_recall(hub: LiveHub) -> None:
    sender, recipient = hub.client(G22), hub.client(H41)
    answer = (await sender.send([H41], "Văn bản của G22")).answer
    edoc = await recipient.edoc(answer["id"])
    with pytest.raises(AxisError) as exc:  # H41 signs a recall of G22's document
        await recipient.post_package(recipient.build_followup(edoc, BusinessDocType.RECALL))
    assert_problem(exc, "sender-mismatch", 403)


async def test_an_unknown_status_code_is_refused(hub: LiveHub) -> None:
    sender, recipient = hub.client(G22), hub.client(H41)
    answer = (await sender.send([H41], "Mã trạng thái lạ")).answer
    edoc = await recipient.edoc(answer["id"])
    notice = formats.StatusNotice(
        sender=formats.Organ(H41, H41),
        response_for=formats.ResponseFor(G22, "1/CV", edoc.promulgation_date, edoc.document_id),
        status_code="07",
        timestamp=datetime(2026, 11, 29, 10, 0),
    )
    package = recipient.signer.sign(formats.build_status(notice, check=False))
    with pytest.raises(AxisError) as exc:
        await recipient.post_package(package)
    assert_problem(exc, "schema-violation", 422)
    assert (await sender.inbox())["items"] == []


async def test_an_update_goes_to_the_earlier_recipients_and_recalls_nothing(
    hub: LiveHub,
) -> None:
    sender, recipient = hub.client(G22), hub.client(H41)
    original = (await sender.send([H41, H10], "Kế hoạch (bản 1)")).answer
    edoc = await sender.edoc(original["id"])
    update = (
        await sender.post_package(
            sender.build_followup(
                edoc, BusinessDocType.UPDATE, "Bổ sung", subject="Kế hoạch (bản 2)"
            )
        )
    ).answer
    assert sorted(update["recipients"]) == [H10, H41]
    items = [i["id"] for i in (await recipient.inbox())["items"]]
    assert items == [original["id"], update["id"]]
    assert {r["state"] for r in await sender.track(original["id"])} == {"queued"}
    # The recipient agrees to the update (15): the code lands on its delivery of the update.
    updated = await recipient.edoc(update["id"])
    await recipient.post_package(recipient.build_status(updated, "15"))
    codes = {r["to"]: r["status_code"] for r in await sender.track(update["id"])}
    assert codes == {H41: "15", H10: None}


async def test_statuses_after_a_recall_find_the_package_they_answer(hub: LiveHub) -> None:
    sender, recipient = hub.client(G22), hub.client(H41)
    original = (await sender.send([H41], "Văn bản đã xử lý dở")).answer
    await recipient.get(original["id"])  # fetched: the recall cannot take it back
    recall = (await sender.recall(original["id"])).answer
    await recipient.status(original["id"], "05")  # still handling the original
    await recipient.status(recall["id"], "02")  # refuses the recall
    await recipient.status(original["id"], "01")  # and confirms the original
    by_package = {pid: (await sender.track(pid))[0] for pid in (original["id"], recall["id"])}
    assert (by_package[original["id"]]["state"], by_package[original["id"]]["status_code"]) == (
        "acknowledged",
        "01",
    )
    assert by_package[recall["id"]]["status_code"] == "02"


async def test_a_status_to_a_revoked_sender_is_refused(hub: LiveHub) -> None:
    sender, recipient = hub.client(G22), hub.client(H41)
    answer = (await sender.send([H41], "Trước khi G22 bị thu hồi")).answer
    edoc = await recipient.edoc(answer["id"])
    await hub.running.hub.store.set_agency_active(G22, False)
    with pytest.raises(AxisError) as exc:
        await recipient.post_package(recipient.build_status(edoc, "03"))
    assert_problem(exc, "unknown-recipient", 422)


async def test_a_document_may_be_updated_more_than_once(hub: LiveHub) -> None:
    """Each update keeps the DocumentId (as the field does): a second update that says
    something else is a package of its own; the same update signed again is a conflict, and
    the same bytes again the first answer."""
    sender = hub.client(G22)
    original = (await sender.send([H41], "Kế hoạch (bản 1)")).answer
    edoc = await sender.edoc(original["id"])
    first = sender.build_followup(edoc, BusinessDocType.UPDATE, subject="Kế hoạch (bản 2)")
    second = sender.build_followup(edoc, BusinessDocType.UPDATE, subject="Kế hoạch (bản 3)")
    one = await sender.post_package(first)
    two = await sender.post_package(second)
    assert one.created and two.created and one.answer["id"] != two.answer["id"]
    again = await sender.post_package(first)
    assert not again.created and again.answer == one.answer
    await asyncio.sleep(1.1)  # a new trace time: the same update, other bytes
    resigned = sender.build_followup(edoc, BusinessDocType.UPDATE, subject="Kế hoạch (bản 2)")
    assert resigned != first
    with pytest.raises(AxisError) as exc:
        await sender.post_package(resigned)
    assert_problem(exc, "duplicate-conflict", 409)


async def test_a_recall_reaches_an_agency_an_update_added(hub: LiveHub) -> None:
    """An update that widens who receives the document; the recall that follows reaches
    the agency it added too, and takes back its update there before it is fetched."""
    sender, first, added = hub.client(G22), hub.client(H41), hub.client(H10)
    original = (await sender.send([H41], "Kế hoạch")).answer
    await first.get(original["id"])
    widened = (await sender.update(original["id"], to=[H41, H10])).answer
    assert sorted(widened["recipients"]) == [H10, H41]
    recall = (await sender.recall(original["id"], "Ban hành nhầm")).answer
    assert sorted(recall["recipients"]) == [H10, H41]
    assert [i["id"] for i in (await added.inbox())["items"]] == [recall["id"]]
    states = {r["to"]: r["state"] for r in await sender.track(widened["id"])}
    assert states == {H41: "recalled", H10: "recalled"}
    assert {r["to"]: r["state"] for r in await sender.track(original["id"])} == {
        H41: "delivered"  # fetched before the recall: it stays, and H41 answers 02 or 03
    }


async def test_a_take_back_answered_after_another_status_lands_on_the_document(
    hub: LiveHub,
) -> None:
    sender, recipient = hub.client(G22), hub.client(H41)
    original = (await sender.send([H41], "Văn bản cần lấy lại")).answer
    await recipient.get(original["id"])
    await sender.status(original["id"], "13", "Đề nghị lấy lại", to=H41)
    await recipient.status(original["id"], "05")  # a status of its own comes between
    await recipient.status(original["id"], "15", "Đồng ý")
    (row,) = await sender.track(original["id"])
    assert row["status_code"] == "15"


async def test_a_follow_up_with_a_docid_of_its_own_is_filed_under_its_document(
    hub: LiveHub,
) -> None:
    """The SDK's samples give an update its own MessageHeader/DocumentId and name the
    document in Bussiness/DocumentId: it is filed under that document, so the recipient's
    answer about the document finds it."""
    sender, recipient = hub.client(G22), hub.client(H41)
    original = (await sender.send([H41], "Kế hoạch (bản 1)")).answer
    edoc = await sender.edoc(original["id"])
    own = f"{G22},{edoc.promulgation_date:%Y/%m/%d},99/{edoc.code_notation}"
    business = formats.Business(BusinessDocType.UPDATE, edoc.document_id, "Bổ sung")
    changed = replace(edoc, document_id=own, subject="Kế hoạch (bản 2)", business=business)
    body = sender.signer.sign(formats.build_edoc(changed))
    update = (await sender.post_package(body)).answer
    assert update["document_id"] == edoc.document_id
    updated = await recipient.edoc(update["id"])
    await recipient.post_package(recipient.build_status(updated, "15"))
    codes = {r["to"]: r["status_code"] for r in await sender.track(update["id"])}
    assert codes == {H41: "15"}
