"""The routing rules (axis.core.routing) as data: no store, no hub, no clock. Every package kind
and every status code against the parties that may and may not send it, and the package of a
document each status lands on."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import date, datetime

import pytest

from axis.core import formats as f
from axis.core.routing import (
    STATUS_FLOWS,
    Facts,
    Flow,
    Limits,
    Named,
    Party,
    Stored,
    answered_package,
    deliveries_read,
    needs,
    route,
)
from axis.errors import NotAllowed, SchemaViolation, UnknownDocument, UnknownRecipient

G22, H41, H10, H29 = "000.00.00.G22", "000.00.00.H41", "000.00.00.H10", "000.00.00.H29"
QD20 = "G22.01"  # G22's Decision 20 code as well
DAY = date(2026, 11, 29)
DOC = f"{G22},2026/11/29,12/VPCP"
S = f.BusinessDocType

PARTIES = {
    G22: Party(G22, frozenset({G22, QD20})),
    H41: Party(H41, frozenset({H41}), pushes=True),
    H10: Party(H10, frozenset({H10})),
    H29: Party(H29, frozenset({H29}), active=False),
}
CODES = {code: Named(p) for p in PARTIES.values() for code in p.codes}
CODES["000.00.00.H99"] = Named(None)
CODES["000.00.00.H28"] = Named(None, successor="H28.01")


def organ(organ_id: str) -> f.Organ:
    return f.Organ(organ_id, f"Cơ quan {organ_id}")


NO_CHANGES = f.Business()


def edoc(
    to: tuple[str, ...] = (H41, H10),
    business: f.Business = NO_CHANGES,
    document_id: str = DOC,
    sender: str = G22,
) -> f.Edoc:
    return f.Edoc(
        sender=organ(sender),
        recipients=tuple(organ(o) for o in to),
        document_id=document_id,
        code_number="12",
        code_notation="VPCP",
        place="Hà Nội",
        promulgation_date=DAY,
        doc_type="1",
        type_detail="0",
        subject="Công văn",
        business=business,
    )


def status(code: str, sender: str, to: str, document_id: str = DOC) -> f.StatusNotice:
    return f.StatusNotice(
        sender=organ(sender),
        response_for=f.ResponseFor(to, "12/VPCP", DAY, document_id),
        status_code=code,
        timestamp=datetime(2026, 11, 29, 9),
    )


ORIGINAL = Stored("p-original", S.NEW, {H41: None, H10: None, H29: None})


def facts(*stored: Stored) -> Facts:
    return Facts(CODES, {(G22, DOC): stored or (ORIGINAL,)})


def routed_to(package: f.Package, sender: str = G22, *stored: Stored) -> tuple[str, ...]:
    return route(PARTIES[sender], package, facts(*stored), Limits()).recipients


# -- new documents ----------------------------------------------------------------------------


def test_a_new_document_goes_to_its_to_agencies_the_pushers_pushed() -> None:
    routed = route(PARTIES[G22], edoc(), facts(), Limits())
    assert (routed.recipients, routed.push_recipients) == ((H41, H10), (H41,))
    assert routed.status_update is None and routed.recall_of == ()


@pytest.mark.parametrize(
    ("code", "error", "words"),
    [
        ("000.00.00.H99", UnknownRecipient, "not registered"),
        (H29, UnknownRecipient, "revoked"),
        ("000.00.00.H28", UnknownRecipient, "closed: H28.01 succeeds it"),
    ],
)
def test_a_recipient_that_cannot_take_it_is_refused_by_name(
    code: str, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=f"To/OrganId.*{words}"):
        routed_to(edoc(to=(H41, code)))


def test_two_codes_of_one_agency_reach_it_once() -> None:
    assert routed_to(edoc(to=(G22, QD20, H41))) == (G22, H41)


def test_one_code_listed_twice_is_refused() -> None:
    with pytest.raises(SchemaViolation, match="listed more than once"):
        routed_to(edoc(to=(H41, H41)))


def test_its_document_id_names_its_sender_by_either_code() -> None:
    routed_to(edoc(document_id=f"{QD20},2026/11/29,12/VPCP"))
    with pytest.raises(SchemaViolation, match="MessageHeader/DocumentId.*names 000.00.00.H41"):
        routed_to(edoc(document_id=f"{H41},2026/11/29,12/VPCP"))


def test_a_closed_code_begins_no_new_document_but_still_names_an_old_one() -> None:
    closed_g22 = dataclasses.replace(PARTIES[G22], closed=frozenset({G22}))
    for kind, new_id in ((S.NEW, None), (S.REPLACE, f"{G22},2026/12/01,15/VPCP")):
        business = f.Business(kind, replacements=(f.Replacement(DOC),) if new_id else ())
        with pytest.raises(SchemaViolation, match="begins with 000.00.00.G22, which is closed"):
            route(closed_g22, edoc(document_id=new_id or DOC, business=business), facts(), Limits())
    # Under its open code it may replace, recall or update what it sent under the closed one.
    replacement = edoc(
        document_id=f"{QD20},2026/12/01,15/VPCP",
        business=f.Business(S.REPLACE, replacements=(f.Replacement(DOC),)),
    )
    assert route(closed_g22, replacement, facts(), Limits()).recipients == (H41, H10)
    recall = edoc(document_id=f"{QD20},2026/12/01,16/VPCP", business=f.Business(S.RECALL, DOC))
    assert route(closed_g22, recall, facts(), Limits()).recipients == (H41, H10)


def test_limits_on_recipients_and_attachments() -> None:
    with pytest.raises(SchemaViolation, match="2 recipients; at most 1"):
        route(PARTIES[G22], edoc(), facts(), Limits(max_recipients=1))
    many = dataclasses.replace(
        edoc(), attachments=tuple(f.Attachment(f"cid:{n}", "a", "b", b"") for n in range(3))
    )
    with pytest.raises(SchemaViolation, match="3 attachments; at most 2"):
        route(PARTIES[G22], many, facts(), Limits(max_attachments=2))


# -- recalls, updates, replacements -----------------------------------------------------------


@pytest.mark.parametrize("named_in", ["Bussiness", "MessageHeader"])
def test_a_recall_names_its_document_either_way_and_takes_it_back(named_in: str) -> None:
    business = f.Business(S.RECALL, DOC if named_in == "Bussiness" else None)
    routed = route(PARTIES[G22], edoc(to=(), business=business), facts(), Limits())
    assert routed.recipients == (H41, H10)  # H29 is revoked since
    assert routed.recall_of == ("p-original",)


def test_a_recall_reaches_whoever_an_update_added_and_takes_the_update_back_too() -> None:
    added = Stored("p-update", S.UPDATE, {H41: None, G22: None})
    business = f.Business(S.RECALL, DOC)
    routed = route(PARTIES[G22], edoc(business=business), facts(added, ORIGINAL), Limits())
    assert routed.recipients == (H41, H10, G22)  # the original's first, then the update's
    assert routed.recall_of == ("p-update", "p-original")


def test_a_follow_up_is_filed_under_the_document_it_acts_on() -> None:
    own = f"{G22},2026/12/01,20/VPCP"  # the follow-up's own MessageHeader/DocumentId
    for kind in (S.RECALL, S.UPDATE):
        routed = route(
            PARTIES[G22], edoc(document_id=own, business=f.Business(kind, DOC)), facts(), Limits()
        )
        assert routed.document_id == DOC, kind
    new = route(PARTIES[G22], edoc(document_id=own), facts(), Limits())
    assert new.document_id == own


def test_an_update_goes_to_its_receiver_list_only_when_the_recipients_change() -> None:
    changes = f.DocumentChanges(True, True, (f.Receiver(H41, "1"),))
    assert routed_to(edoc(business=f.Business(S.UPDATE, DOC, changes=changes))) == (H41,)
    assert routed_to(edoc(business=f.Business(S.UPDATE, DOC))) == (H41, H10)
    # DocumentReceiver 0: the list is what the field writes anyway (VNPT's library writes
    # the recipients there); who gets the update has not changed, and one revoked since
    # (H29) is left out rather than refused.
    same = f.DocumentChanges(True, False, (f.Receiver(H29), f.Receiver(H41)))
    assert routed_to(edoc(business=f.Business(S.UPDATE, DOC, changes=same))) == (H41, H10)
    routed = route(PARTIES[G22], edoc(business=f.Business(S.UPDATE, DOC)), facts(), Limits())
    assert routed.recall_of == ()  # an update takes nothing back


def test_a_changed_receiver_list_is_checked_as_a_to_list_is() -> None:
    def update(*codes: str) -> f.Edoc:
        changes = f.DocumentChanges(False, True, tuple(f.Receiver(c) for c in codes))
        return edoc(business=f.Business(S.UPDATE, DOC, changes=changes))

    with pytest.raises(SchemaViolation, match="ReceiverList: 2 recipients; at most 1"):
        route(PARTIES[G22], update(H41, H10), facts(), Limits(max_recipients=1))
    with pytest.raises(SchemaViolation, match="ReceiverList: a recipient is listed more than"):
        routed_to(update(H41, H41))
    with pytest.raises(UnknownRecipient, match="ReceiverList/Receiver/OrganId.*H29 is revoked"):
        routed_to(update(H41, H29))
    with pytest.raises(SchemaViolation, match="DocumentReceiver 1 .* names none"):
        routed_to(update())


def test_a_replacement_goes_to_its_to_limited_by_its_organ_id_list() -> None:
    new_id = f"{G22},2026/11/30,14/VPCP"
    listed = f.Business(S.REPLACE, replacements=(f.Replacement(DOC, (H41,)),))
    assert routed_to(edoc(document_id=new_id, business=listed)) == (H41,)
    unlisted = f.Business(S.REPLACE, replacements=(f.Replacement(DOC),))
    assert routed_to(edoc(to=(H10,), document_id=new_id, business=unlisted)) == (H10,)
    by_bussiness = f.Business(S.REPLACE, DOC)
    assert routed_to(edoc(document_id=new_id, business=by_bussiness)) == (H41, H10)
    # The replaced document may never have passed through this hub (sent before it, or on
    # paper): the replacement is a whole document, delivered as one.
    older = f.Business(S.REPLACE, replacements=(f.Replacement(f"{G22},2014/01/30,7806/X"),))
    assert routed_to(edoc(document_id=new_id, business=older)) == (H41, H10)
    # An OrganIdList that names another code of a recipient names that recipient.
    by_alias = f.Business(S.REPLACE, replacements=(f.Replacement(DOC, (QD20,)),))
    assert routed_to(edoc(to=(G22, H41), document_id=new_id, business=by_alias)) == (G22,)


@pytest.mark.parametrize(
    ("business", "error", "words"),
    [
        (f.Business(S.RECALL, f"{G22},2026/01/01,1/X"), UnknownDocument,
         "Bussiness/DocumentId names .* never sent"),
        (f.Business(S.REPLACE, replacements=(f.Replacement(f"{H41},2014/01/30,7806/X"),)),
         SchemaViolation, "ReplacementInfo/DocumentId .* an agency replaces only its own"),
        (f.Business(S.REPLACE, replacements=(f.Replacement(DOC, (H29,)),)),
         SchemaViolation, "OrganIdList names none of the replacement's To"),
        (f.Business(S.UPDATE, f"{H41},2026/11/29,3/UB"), SchemaViolation,
         "000.00.00.H41's document"),
        (f.Business(S.REPLACE), SchemaViolation, "names what it replaces"),
    ],
    ids=[
        "recall-unknown", "replace-someone-elses", "replace-for-nobody", "update-someone-elses",
        "replace-naming-nothing",
    ],
)  # fmt: skip
def test_a_follow_up_naming_nothing_it_can_find_is_refused_with_the_reason(
    business: f.Business, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        routed_to(edoc(business=business))


def test_needs_names_every_code_and_document_a_package_acts_on() -> None:
    changes = f.DocumentChanges(receivers=(f.Receiver(H10),))
    need = needs(edoc(business=f.Business(S.UPDATE, changes=changes)))
    assert need.documents == {(G22, DOC)} and {G22, H10} <= need.codes
    need = needs(status("03", H41, G22))
    assert need.documents == {(G22, DOC)} and need.codes == {G22}


# -- statuses ---------------------------------------------------------------------------------


def test_the_flows_are_as_the_standard_says() -> None:
    assert {c for c, flow in STATUS_FLOWS.items() if flow is Flow.TO_RECIPIENT} == {"13"}
    assert set(STATUS_FLOWS) == set(f.STATUS_CODES)


CASES = list(itertools.product(sorted(f.STATUS_CODES), (G22, H41, "H10+"), (G22, H41, H10)))


@pytest.mark.parametrize(("code", "sender", "to"), CASES)
def test_each_status_code_between_each_pair_of_parties(code: str, sender: str, to: str) -> None:
    """A recipient (H41) answers the sender (G22) with all but 13; the sender asks a recipient
    with 13; nobody else, and to nobody else. ("H10+" is an outsider: not a recipient.)"""
    outsider = sender == "H10+"
    party = PARTIES[H10] if outsider else PARTIES[sender]
    stored = Stored("p-original", S.NEW, {H41: None})
    notice = status(code, party.organ_id, to)
    allowed = (
        (code == "13" and sender == G22 and to == H41)
        or (code != "13" and sender == H41 and to == G22)
    )  # fmt: skip
    if allowed:
        routed = route(party, notice, Facts(CODES, {(G22, DOC): (stored,)}), Limits())
        assert routed.recipients == (to,)
        assert routed.status_update is not None
        assert (routed.status_update.recipient, routed.status_update.code) == (H41, code)
    elif outsider or (code == "13") != (sender == G22):
        # No party of the document in that direction: the answer for no document at all.
        with pytest.raises(UnknownDocument, match="no document .* to answer"):
            route(party, notice, Facts(CODES, {(G22, DOC): (stored,)}), Limits())
    else:  # a party of it, addressing the wrong one
        with pytest.raises(NotAllowed):
            route(party, notice, Facts(CODES, {(G22, DOC): (stored,)}), Limits())


def _outcome(sender: Party, package: f.Package, facts: Facts) -> object:
    try:
        return route(sender, package, facts, Limits())
    except Exception as exc:  # noqa: BLE001 - compared, type and words
        return type(exc), str(exc)


# A broadcast's shapes: the original to many (some answered, one taken back), a recall and an
# update to some of them, and the case where the status's sender received none of them.
SHAPES = [
    (Stored("p-original", S.NEW, {H41: "03", H10: None, H29: "05"}),),
    (
        Stored("p-update", S.UPDATE, {H41: None, H29: "15"}),
        Stored("p-recall", S.RECALL, {H10: None, H41: "03"}, frozenset({H10})),
        Stored("p-original", S.NEW, {H41: "13", H10: None, H29: None}, frozenset({H10})),
    ),
    (Stored("p-original", S.NEW, {H10: None, H29: None}),),
]


@pytest.mark.parametrize("shape", range(len(SHAPES)))
@pytest.mark.parametrize(("code", "sender", "to"), CASES)
def test_a_status_routes_alike_on_the_deliveries_it_reads_alone(
    code: str, sender: str, to: str, shape: int
) -> None:
    """What the store is asked for a status (deliveries_read) is all routing reads: with
    the other recipients' deliveries left out, the same decision or the same refusal."""
    party = PARTIES[H10] if sender == "H10+" else PARTIES[sender]
    notice = status(code, party.organ_id, to)
    stored = SHAPES[shape]
    only = deliveries_read(notice, party.organ_id, CODES)
    assert only is not None and party.organ_id in only and len(only) <= 3
    narrowed = tuple(
        dataclasses.replace(
            s,
            deliveries={r: c for r, c in s.deliveries.items() if r in only},
            taken_back=s.taken_back & only,
        )
        for s in stored
    )
    full = _outcome(party, notice, Facts(CODES, {(G22, DOC): stored}))
    assert _outcome(party, notice, Facts(CODES, {(G22, DOC): narrowed})) == full


def test_an_edoc_reads_every_delivery() -> None:
    assert deliveries_read(edoc(), G22, CODES) is None


def test_a_status_about_no_document_or_to_a_revoked_party_is_refused() -> None:
    with pytest.raises(UnknownDocument, match="ResponseFor/DocumentId"):
        route(PARTIES[H41], status("03", H41, G22), Facts(CODES, {}), Limits())
    revoked = dict(CODES) | {G22: Named(dataclasses.replace(PARTIES[G22], active=False))}
    stored = (Stored("p", S.NEW, {H41: None}),)
    with pytest.raises(UnknownRecipient, match="revoked"):
        route(PARTIES[H41], status("03", H41, G22), Facts(revoked, {(G22, DOC): stored}), Limits())


RECALL = Stored("p-recall", S.RECALL, {H41: None})
ANSWERED_RECALL = Stored("p-recall", S.RECALL, {H41: "03"})
UPDATE = Stored("p-update", S.UPDATE, {H41: None})


@pytest.mark.parametrize(
    ("code", "stored", "lands_on"),
    [
        ("03", (RECALL, ORIGINAL), "p-recall"),  # agrees to the recall
        ("02", (ANSWERED_RECALL, ORIGINAL), "p-original"),  # the recall was answered already
        ("03", (UPDATE, ORIGINAL), "p-original"),  # an update is not answered with 02/03
        ("15", (UPDATE, ORIGINAL), "p-update"),  # agrees to the update
        ("16", (RECALL, ORIGINAL), "p-original"),  # no update: the document itself
        ("04", (UPDATE, RECALL, ORIGINAL), "p-original"),  # handling codes: the document
        ("13", (UPDATE, ORIGINAL), "p-original"),  # the sender asks to take the document back
    ],
)
def test_the_package_a_status_lands_on(
    code: str, stored: tuple[Stored, ...], lands_on: str
) -> None:
    assert answered_package(code, H41, stored) == lands_on


def test_15_after_a_13_answers_the_take_back_on_the_original() -> None:
    asked = Stored("p-original", S.NEW, {H41: "13"})
    assert answered_package("15", H41, (UPDATE, asked)) == "p-original"
    assert answered_package("16", H41, (UPDATE, asked)) == "p-original"


def test_15_after_another_status_came_between_still_finds_what_is_unanswered() -> None:
    # The 13 was followed by a 05 on the original, then the recipient answers the 13: with
    # no update waiting for an answer, the document itself.
    moved_on = Stored("p-original", S.NEW, {H41: "05"})
    assert answered_package("15", H41, (moved_on,)) == "p-original"
    answered = Stored("p-update", S.UPDATE, {H41: "15"})
    assert answered_package("16", H41, (answered, moved_on)) == "p-original"
    # Two updates, the newer answered: the older one is still waiting.
    older = Stored("p-update-1", S.UPDATE, {H41: None})
    assert answered_package("15", H41, (answered, older, moved_on)) == "p-update-1"


def test_a_document_is_recalled_once() -> None:
    recalled = Stored("p-recall", S.RECALL, {H41: None, H10: None})
    again = edoc(document_id=f"{G22},2026/12/01,30/VPCP", business=f.Business(S.RECALL, DOC))
    with pytest.raises(NotAllowed, match="recalled already .* p-recall"):
        route(PARTIES[G22], again, facts(recalled, ORIGINAL), Limits())


def test_who_a_recall_took_the_document_from_answers_only_the_recall() -> None:
    taken = Stored("p-original", S.NEW, {H41: None}, frozenset({H41}))
    recall = Stored("p-recall", S.RECALL, {H41: None})
    for code in ("01", "05", "15"):
        with pytest.raises(NotAllowed, match="taken back from 000.00.00.H41"):
            route(PARTIES[H41], status(code, H41, G22), facts(recall, taken), Limits())
    routed = route(PARTIES[H41], status("03", H41, G22), facts(recall, taken), Limits())
    assert routed.status_update is not None and routed.status_update.package_id == "p-recall"
