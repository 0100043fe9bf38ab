"""Where a verified package goes and what it does (SPEC §5), decided as data, with no store.

Theory of operation. Routing is one function, :func:`route`, over plain records: the sending
agency (:class:`Party`), the package, and the :class:`Facts` it needs from the directory and
the stored documents (what each OrganId the package names stands for; each document it names,
with its packages and their deliveries). :func:`needs` says which facts those are, so the thin
layer above (:mod:`axis.usecases.routing`) fetches them from the store and calls
:func:`route`; nothing here waits or reads. Every refusal is an InputError naming the element
and the rule.

The rules, by BussinessDocType (an edoc) and by status code:

- **New (0)**: to its ``To`` agencies, each registered, active and not a closed code (closed:
  refused naming the successor); two codes of one agency, once. Its DocumentId begins with
  one of its sender's open codes.
- **Recall (1)** and **update (2)**: they name the earlier document in
  ``Bussiness/DocumentId``, or, as the SDK's own samples do, in ``MessageHeader/DocumentId``;
  it must be the sender's (under any code it holds or held), and the follow-up is filed
  under that document, whatever its own MessageHeader/DocumentId says. A recall goes to
  every recipient of that document still active (of the original and of its updates) and
  takes back each of its packages not yet fetched; a document is recalled once, and a
  recipient it was taken back from answers only the recall (02/03); an update goes to the
  agencies of its ``BussinessDocumentInfo/ReceiverList`` when ``DocumentReceiver`` is 1
  (who receives it changed), else to the document's recipients still active, and changes no
  delivery.
- **Replacement (3)**: a new document of its own (its own DocumentId, which begins with an
  open code) that names the documents it replaces in
  ``ReplacementInfoList/ReplacementInfo/DocumentId`` (else ``Bussiness/DocumentId``), each
  the sender's. It goes to its ``To`` agencies, limited to those its ``OrganIdList`` names
  when it has one. The replaced document need not have passed through this hub: it may
  predate it, or have gone on paper (the SDK's own sample replaces such a one); the
  replacement carries everything its recipients need.
- **Statuses** go to ``ResponseFor/OrganId``, the other party of the document
  (:data:`STATUS_FLOWS`): a recipient answers the sender with 01–06, 15 and 16, and the
  sender asks a recipient to take the document back with 13. Only those parties may send
  them. Each is recorded on the delivery it concerns (:func:`answered_package`): 13 on the
  original's delivery to that recipient; 15/16 on the original while a 13 is the last code
  on it, else on the newest update not yet answered, else on the original; 02/03 on the
  newest recall the recipient has not answered, else the original (only a recall is
  answered with 02/03; an update is answered with 15/16); every other code on the original.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from axis.core.edxml_model import (
    STATUS_CODES,
    BusinessDocType,
    Edoc,
    Package,
    StatusNotice,
    is_document_id,
    parse_document_id,
)
from axis.errors import (
    NotAllowed,
    SchemaViolation,
    UnknownDocument,
    UnknownRecipient,
)


@dataclass(frozen=True)
class Party:
    """A registered agency as routing sees it: its OrganId (the one the hub files it under),
    every code it holds (``closed``: those of them closed since), whether it may still take
    packages, whether it takes pushes."""

    organ_id: str
    codes: frozenset[str]
    active: bool = True
    pushes: bool = False
    closed: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Named:
    """What an OrganId written in a package stands for: its agency (None: nobody holds the
    code), and the code's successor when the code is closed."""

    party: Party | None
    successor: str | None = None


@dataclass(frozen=True)
class Stored:
    """One stored edoc of a document: the original, a recall, an update or a replacement,
    with each recipient's delivery (OrganId → its last status code, or None): every
    recipient's, or those :func:`deliveries_read` names for the package routed."""

    package_id: str
    business_type: BusinessDocType
    deliveries: Mapping[str, str | None]
    taken_back: frozenset[str] = frozenset()  # recipients a recall took it back from


@dataclass(frozen=True)
class Facts:
    """What :func:`route` needs to know: ``codes`` for every OrganId :func:`needs` names, and
    ``documents`` for every (sender's OrganId, DocumentId) it names, newest package first."""

    codes: Mapping[str, Named]
    documents: Mapping[tuple[str, str], tuple[Stored, ...]]


@dataclass(frozen=True)
class Needs:
    """The facts a package needs: the OrganIds it names, the documents it names as (the
    OrganId that begins their DocumentId, DocumentId), and whether the agencies of those
    documents' recipients too (a recall or an update may go to them)."""

    codes: frozenset[str]
    documents: frozenset[tuple[str, str]]
    recipients: bool = False


@dataclass(frozen=True)
class StatusUpdate:
    """A status code to record on one delivery."""

    package_id: str
    recipient: str
    code: str


@dataclass(frozen=True)
class Routed:
    """The routing decision for one package."""

    recipients: tuple[str, ...]
    document_id: str
    subject: str
    push_recipients: tuple[str, ...] = ()
    status_update: StatusUpdate | None = None
    recall_of: tuple[str, ...] = ()  # a recall: the packages it takes back where unfetched


@dataclass(frozen=True)
class Limits:
    """How far one package may reach (``[limits]`` of axis.toml)."""

    max_recipients: int = 200
    max_attachments: int = 100


class Flow(StrEnum):
    """Which way a status travels between the two parties of a document."""

    TO_SENDER = "a recipient answers the document's sender"
    TO_RECIPIENT = "the document's sender asks a recipient"


#: Which way each status code travels: who may send it, and to whom (ResponseFor/OrganId).
STATUS_FLOWS: Mapping[str, Flow] = MappingProxyType(
    {code: Flow.TO_RECIPIENT if code == "13" else Flow.TO_SENDER for code in STATUS_CODES}
)
TAKE_BACK = "13"
TAKE_BACK_ANSWERS = frozenset({"15", "16"})  # agrees / refuses a take-back or an update
RECALL_ANSWERS = frozenset({"02", "03"})  # refuses / agrees to a recall
S = BusinessDocType


def earlier_id(edoc: Edoc) -> tuple[str, str]:
    """The document a recall or an update names, and where: ``Bussiness/DocumentId``, else
    (as the SDK's samples do) ``MessageHeader/DocumentId``."""
    if edoc.business.document_id:
        return edoc.business.document_id, "Bussiness/DocumentId"
    return edoc.document_id, "MessageHeader/DocumentId"


def _replaced(edoc: Edoc) -> list[tuple[str, str]]:
    """The documents a replacement names, each with where it names it."""
    if edoc.business.replacements:
        where = "ReplacementInfoList/ReplacementInfo/DocumentId"
        return [(r.document_id, where) for r in edoc.business.replacements]
    if edoc.business.document_id:
        return [(edoc.business.document_id, "Bussiness/DocumentId")]
    raise SchemaViolation(
        "a replacement (BussinessDocType 3) names what it replaces in"
        " ReplacementInfoList/ReplacementInfo/DocumentId (or Bussiness/DocumentId)"
    )


def _owner(document_id: str) -> str:
    return document_id.split(",", 1)[0]


def _answered_owner(notice: StatusNotice) -> str:
    """The code of the agency whose document a status answers: the first part of its
    DocumentId; for one not of the standard's form (a UUID, which only the national axis's
    face lets in, recorded as a deviation), the party the flow names (ResponseFor/OrganId
    when a recipient answers the sender; the status's own sender when it sends 13)."""
    answered = notice.response_for
    if is_document_id(answered.document_id):
        return _owner(answered.document_id)
    if STATUS_FLOWS[notice.status_code] is Flow.TO_RECIPIENT:
        return notice.sender.organ_id
    return answered.organ_id


def needs(package: Package) -> Needs:
    """Which facts :func:`route` wants for ``package``."""
    if isinstance(package, StatusNotice):
        answered = package.response_for
        owner = _answered_owner(package)
        return Needs(
            frozenset({answered.organ_id, owner}),
            frozenset({(owner, answered.document_id)}),
        )
    codes = {_owner(package.document_id)}
    documents: set[str] = set()
    business = package.business
    if business.doc_type is S.NEW:
        codes.update(r.organ_id for r in package.recipients)
    elif business.doc_type is S.REPLACE:
        codes.update(r.organ_id for r in package.recipients)
        codes.update(o for r in business.replacements for o in r.organ_ids)
    else:
        documents.add(earlier_id(package)[0])
        if business.changes is not None:
            codes.update(r.organ_id for r in business.changes.receivers)
    codes.update(_owner(d) for d in documents)
    named = frozenset((_owner(d), d) for d in documents)
    return Needs(frozenset(codes), named, recipients=bool(documents))


def deliveries_read(
    package: Package, sender: str, codes: Mapping[str, Named]
) -> frozenset[str] | None:
    """The recipients whose deliveries :func:`route` reads of the documents ``package`` names,
    sent by the agency ``sender`` (its OrganId), given the ``codes`` of :func:`needs`; None for
    every recipient. A status reads one delivery: its sender's (a recipient answering), or that
    of the recipient it names (13, the document's sender asking), never those of the other
    recipients (62 of them on a broadcast, for each of its statuses)."""
    if not isinstance(package, StatusNotice):
        return None
    named = package.response_for.organ_id
    party = codes.get(named, Named(None)).party
    return frozenset({sender, named} | ({party.organ_id} if party else set()))


def route(sender: Party, package: Package, facts: Facts, limits: Limits) -> Routed:
    """Where ``package`` from ``sender`` goes and what it does.

    Raises:
        InputError: SchemaViolation, SenderMismatch, UnknownRecipient, UnknownDocument or
            NotAllowed, naming the element and the rule.
    """
    if isinstance(package, StatusNotice):
        return _status(sender, package, facts)
    return _edoc(sender, package, facts, limits)


# -- edocs ------------------------------------------------------------------------------------


def _edoc(sender: Party, edoc: Edoc, facts: Facts, limits: Limits) -> Routed:
    if len(edoc.attachments) > limits.max_attachments:
        raise SchemaViolation(
            f"{len(edoc.attachments)} attachments; at most {limits.max_attachments}"
        )
    business = edoc.business
    # A DocumentId not of the standard's form got here only through a face that records it
    # as a deviation (axis.core.conformance): it names no owner to check.
    standard = is_document_id(edoc.document_id)
    owner = edoc.sender.organ_id
    if standard:
        owner = parse_document_id(edoc.document_id, "MessageHeader/DocumentId").organ_id
    # Any code the sender holds: it may hold both generations, and a follow-up may name the
    # earlier document, sent under a code closed since.
    if owner not in sender.codes:
        raise SchemaViolation(
            f"MessageHeader/DocumentId {edoc.document_id!r} names {owner}, not the sender"
            f" {edoc.sender.organ_id} (From/OrganId): a DocumentId begins with its sender's"
            " OrganId"
        )
    if business.doc_type in (S.NEW, S.REPLACE):
        if standard and owner in sender.closed:
            raise SchemaViolation(
                f"MessageHeader/DocumentId {edoc.document_id!r} begins with {owner}, which is"
                " closed: a new document's DocumentId begins with one of its sender's open codes"
            )
        codes = [r.organ_id for r in edoc.recipients]
        addressed = _addressed(_listed(codes, "MessageHeader/To", limits), "To/OrganId", facts)
        if business.doc_type is S.REPLACE:
            addressed = _replacement(sender, edoc, addressed, facts)
        return _routed(addressed, edoc, edoc.document_id)
    document_id, where = earlier_id(edoc)
    earlier = _sender_document(sender, document_id, where, facts)
    changes = business.changes
    if business.doc_type is S.UPDATE and changes and changes.document_receiver:
        where = "BussinessDocumentInfo/ReceiverList/Receiver/OrganId"
        if not changes.receivers:
            raise SchemaViolation(
                "BussinessDocumentInfo: DocumentReceiver 1 says the recipients change, and"
                " ReceiverList names none"
            )
        codes = _listed([r.organ_id for r in changes.receivers], "ReceiverList", limits)
        return _routed(_addressed(codes, where, facts), edoc, document_id)
    recipients = _still_active(earlier, facts, document_id)
    if business.doc_type is not S.RECALL:
        return _routed(recipients, edoc, document_id)
    recalled = next((s for s in earlier if s.business_type is S.RECALL), None)
    if recalled is not None:
        # One recall per document: its recipients answer it (02/03); another, under a new
        # DocumentId, would only ask them again.
        raise NotAllowed(
            f"{document_id!r} is recalled already (package {recalled.package_id}); its"
            " recipients answer that recall with 02 or 03"
        )
    taken = tuple(s.package_id for s in earlier if s.business_type in (S.NEW, S.UPDATE))
    return _routed(recipients, edoc, document_id, recall_of=taken)


def _listed(codes: list[str], where: str, limits: Limits) -> list[str]:
    """A list of recipients as a package writes it: each once, within the limit."""
    if len(set(codes)) != len(codes):
        raise SchemaViolation(f"{where}: a recipient is listed more than once")
    if len(codes) > limits.max_recipients:
        raise SchemaViolation(f"{where}: {len(codes)} recipients; at most {limits.max_recipients}")
    return codes


def _replacement(sender: Party, edoc: Edoc, addressed: list[Party], facts: Facts) -> list[Party]:
    """A replacement's recipients: its To, limited to what its OrganIdLists name."""
    for document_id, where in _replaced(edoc):
        owner = parse_document_id(document_id, where).organ_id
        if owner not in sender.codes:
            raise SchemaViolation(
                f"{where} {document_id!r} names {owner}'s document: an agency replaces only its own"
            )
    listed = [o for r in edoc.business.replacements for o in r.organ_ids]
    if not listed:
        return addressed
    named = {p.organ_id for code in listed if (p := facts.codes.get(code, Named(None)).party)}
    limited = [p for p in addressed if p.organ_id in named]
    if not limited:
        raise SchemaViolation(
            "ReplacementInfo/OrganIdList names none of the replacement's To: nobody to send it to"
        )
    return limited


def _sender_document(
    sender: Party, document_id: str, where: str, facts: Facts
) -> tuple[Stored, ...]:
    owner = parse_document_id(document_id, where).organ_id
    if owner not in sender.codes:
        raise SchemaViolation(
            f"{where} {document_id!r} names {owner}'s document: an agency acts only on its own"
        )
    found = facts.documents.get((sender.organ_id, document_id), ())
    if not found:
        raise UnknownDocument(f"{where} names {document_id!r}, which {sender.organ_id} never sent")
    return found


def _original(stored: tuple[Stored, ...]) -> Stored:
    """The document's first package: its new edoc, else its oldest (newest come first)."""
    return next((s for s in stored if s.business_type is S.NEW), stored[-1])


def _addressed(codes: list[str], where: str, facts: Facts) -> list[Party]:
    """The agencies ``codes`` stand for: registered, active, open; two codes of one agency,
    once."""
    parties: dict[str, Party] = {}
    for code in codes:
        named = facts.codes.get(code, Named(None))
        if named.successor is not None:
            raise UnknownRecipient(
                f"{where} {code} is closed: {named.successor} succeeds it; address that one"
            )
        if named.party is None or not named.party.active:
            state = "not registered" if named.party is None else "revoked"
            raise UnknownRecipient(f"{where}: recipient {code} is {state}")
        parties.setdefault(named.party.organ_id, named.party)
    return list(parties.values())


def _still_active(stored: tuple[Stored, ...], facts: Facts, document_id: str) -> list[Party]:
    """The recipients of a document (of any of its packages, oldest first) who may still
    take a follow-up (one revoked since cannot)."""
    seen = dict.fromkeys(r for s in reversed(stored) for r in s.deliveries)
    found = [facts.codes.get(r, Named(None)).party for r in seen]
    parties = [p for p in found if p is not None and p.active]
    if not parties:
        raise UnknownRecipient(f"no recipient of {document_id!r} is still active")
    return parties


def _routed(
    parties: list[Party], edoc: Edoc, document_id: str, recall_of: tuple[str, ...] = ()
) -> Routed:
    """An edoc's decision, filed under ``document_id`` (a follow-up: the one it acts on)."""
    return Routed(
        recipients=tuple(p.organ_id for p in parties),
        document_id=document_id,
        subject=edoc.subject,
        push_recipients=tuple(p.organ_id for p in parties if p.pushes),
        recall_of=recall_of,
    )


# -- statuses ---------------------------------------------------------------------------------


def _status(sender: Party, notice: StatusNotice, facts: Facts) -> Routed:
    answered = notice.response_for
    owner_code = _answered_owner(notice)
    owner = facts.codes.get(owner_code, Named(None)).party
    stored = facts.documents.get((owner.organ_id, answered.document_id), ()) if owner else ()
    if not stored and not is_document_id(answered.document_id):
        # Only a document the national axis's face took may have another form (recorded
        # there as a deviation); any other is refused by the form's own rule.
        parse_document_id(answered.document_id, "ResponseFor/DocumentId")
    # Who is no party of a document learns nothing of it: the same answer as for none.
    nothing = UnknownDocument(
        f"ResponseFor/DocumentId: no document {answered.document_id!r} from {owner_code} to answer"
    )
    if owner is None or not stored:
        raise nothing
    other = facts.codes.get(answered.organ_id, Named(None)).party
    code = notice.status_code
    flow = STATUS_FLOWS[code]
    if flow is Flow.TO_RECIPIENT:
        if sender.organ_id != owner.organ_id:
            raise nothing  # only its sender asks a recipient to take it back
        recipient = other.organ_id if other else answered.organ_id
        if not any(recipient in s.deliveries for s in stored):
            raise NotAllowed(
                f"ResponseFor/OrganId {answered.organ_id} is not a recipient of"
                f" {answered.document_id!r}"
            )
        target, filed_for = other, recipient
    else:
        if not any(sender.organ_id in s.deliveries for s in stored):
            raise nothing  # only its recipients answer it
        original = _original(stored)
        if sender.organ_id in original.taken_back and code not in RECALL_ANSWERS:
            raise NotAllowed(
                f"{answered.document_id!r} was taken back from {sender.organ_id} before it"
                " fetched it: it answers only the recall (02 or 03)"
            )
        if other is None or other.organ_id != owner.organ_id:
            raise NotAllowed(
                f"ResponseFor/OrganId {answered.organ_id}: status {code} goes to the document's"
                f" sender, {owner.organ_id}"
            )
        target, filed_for = owner, sender.organ_id
    if target is None or not target.active:
        raise UnknownRecipient(f"{answered.organ_id}, the other party, has been revoked")
    package_id = answered_package(code, filed_for, stored)
    meaning = STATUS_CODES[code]
    return Routed(
        recipients=(target.organ_id,),
        document_id=answered.document_id,
        subject=f"Status {code} ({meaning}) from {sender.organ_id}",
        push_recipients=(target.organ_id,) if target.pushes else (),
        status_update=StatusUpdate(package_id, filed_for, code),
    )


def answered_package(code: str, recipient: str, stored: tuple[Stored, ...]) -> str:
    """The package of a document (newest first in ``stored``) whose delivery to
    ``recipient`` a status with ``code`` is about (see the module doc)."""
    addressed = [s for s in stored if recipient in s.deliveries]
    original = next((s for s in addressed if s.business_type is S.NEW), addressed[-1])
    if code in RECALL_ANSWERS:
        recalls = [s for s in addressed if s.business_type is S.RECALL]
        unanswered = [s for s in recalls if s.deliveries[recipient] is None]
        return (unanswered or [original])[0].package_id
    if code in TAKE_BACK_ANSWERS and original.deliveries[recipient] != TAKE_BACK:
        # The last code on the original is not a pending 13 (another status may have come
        # between the 13 and its answer): the newest update not yet answered.
        updates = [s for s in addressed if s.business_type is S.UPDATE]
        unanswered = [s for s in updates if s.deliveries[recipient] not in TAKE_BACK_ANSWERS]
        return (unanswered or [original])[0].package_id
    return original.package_id
