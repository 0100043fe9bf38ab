"""Where a verified package goes (SPEC §5), decided before anything is written.

- A new edoc (BussinessDocType 0) goes to its ``To`` agencies, each registered and active.
- A recall, update or replacement (1/2/3) names the earlier document in
  ``Bussiness/DocumentId`` and goes to that document's recipients that are still active; a
  recall also takes back the deliveries nobody has fetched yet.
- A status goes back to the sender of the document it answers, and only a recipient of that
  document may send one. Follow-ups keep the original's DocumentId, so the code picks the
  package it answers: 15/16 the newest follow-up, 02/03 an unanswered recall if there is one,
  every other code the original (see ``_answered_package``).
- Recipients with a push endpoint get the package pushed; every recipient can pull it.
"""

from __future__ import annotations

from dataclasses import dataclass

from axis.core import formats
from axis.core.formats import BusinessDocType, Edoc, Package, StatusNotice
from axis.errors import (
    NotAllowed,
    SchemaViolation,
    SenderMismatch,
    UnknownDocument,
    UnknownRecipient,
)
from axis.host.config import Limits
from axis.store.base import Agency, PackageRecord, StatusUpdate, Store

FOLLOWUP_ANSWERS = frozenset({"15", "16"})  # agrees / refuses a take-back or an update
RECALL_ANSWERS = frozenset({"02", "03"})  # refuses / agrees to a recall (or the original)


@dataclass(frozen=True)
class Routed:
    """The routing decision for one package."""

    recipients: tuple[str, ...]
    document_id: str
    subject: str
    push_recipients: tuple[str, ...] = ()
    status_update: StatusUpdate | None = None
    recall_of: str | None = None


class Router:
    """Applies the routing rules against the agency directory and the stored documents."""

    def __init__(self, store: Store, limits: Limits) -> None:
        self.store = store
        self.limits = limits

    async def route(self, sender: Agency, package: Package) -> Routed:
        """Raises the InputError that explains why the package cannot go anywhere."""
        if isinstance(package, StatusNotice):
            return await self._status(sender, package)
        return await self._edoc(package)

    async def _edoc(self, edoc: Edoc) -> Routed:
        if len(edoc.attachments) > self.limits.max_attachments:
            raise SchemaViolation(
                f"{len(edoc.attachments)} attachments; at most {self.limits.max_attachments}"
            )
        owner = edoc.document_id.split(",", 1)[0]
        if owner != edoc.sender.organ_id:
            raise SenderMismatch(
                f"DocumentId {edoc.document_id!r} names {owner}, not the sender"
                f" {edoc.sender.organ_id}"
            )
        if edoc.business.doc_type is BusinessDocType.NEW:
            agencies = await self._new_recipients(tuple(r.organ_id for r in edoc.recipients))
            return self._routed(agencies, edoc.document_id, edoc.subject)
        earlier, agencies = await self._earlier_recipients(edoc)
        recall = edoc.business.doc_type is BusinessDocType.RECALL
        return self._routed(
            agencies, edoc.document_id, edoc.subject, recall_of=earlier.id if recall else None
        )

    async def _new_recipients(self, organ_ids: tuple[str, ...]) -> list[Agency]:
        if len(set(organ_ids)) != len(organ_ids):
            raise SchemaViolation("a recipient is listed more than once")
        if len(organ_ids) > self.limits.max_recipients:
            raise SchemaViolation(
                f"{len(organ_ids)} recipients; at most {self.limits.max_recipients}"
            )
        agencies = []
        for organ_id in organ_ids:
            found = await self.store.get_agency(organ_id)
            if found is None or not found.active:
                state = "not registered" if found is None else "revoked"
                raise UnknownRecipient(f"recipient {organ_id} is {state}")
            agencies.append(found)
        return agencies

    async def _earlier_recipients(self, edoc: Edoc) -> tuple[PackageRecord, list[Agency]]:
        earlier_id = edoc.business.document_id
        if not earlier_id:
            raise SchemaViolation(
                f"BussinessDocType {int(edoc.business.doc_type)} needs Bussiness/DocumentId"
            )
        earlier = await self.store.find_document(edoc.sender.organ_id, earlier_id)
        if earlier is None:
            raise UnknownDocument(f"{edoc.sender.organ_id} sent no document {earlier_id!r}")
        # An agency revoked since the original cannot take the recall; the others must.
        agencies = []
        for delivery in await self.store.deliveries(earlier.id):
            agency = await self.store.get_agency(delivery.recipient)
            if agency is not None and agency.active:
                agencies.append(agency)
        if not agencies:
            raise UnknownRecipient(f"no recipient of {earlier_id!r} is still active")
        return earlier, agencies

    async def _status(self, sender: Agency, notice: StatusNotice) -> Routed:
        answered = notice.response_for
        document = await self._answered_package(sender, notice)
        original_sender = await self.store.get_agency(document.sender)
        if original_sender is None or not original_sender.active:
            raise UnknownRecipient(f"{document.sender}, the sender, has been revoked")
        meaning = formats.STATUS_CODES[notice.status_code]
        return self._routed(
            [original_sender],
            answered.document_id,
            f"Status {notice.status_code} ({meaning}) from {sender.organ_id}",
            status_update=StatusUpdate(document.id, sender.organ_id, notice.status_code),
        )

    async def _answered_package(self, sender: Agency, notice: StatusNotice) -> PackageRecord:
        """Which package with the answered DocumentId the status is about.

        A recall, update or replacement keeps the original's DocumentId, so the code decides:
        15/16 answer a take-back or update (the newest follow-up); 02/03 answer a recall when
        one is still unanswered, else the original; every other code is about the original.
        """
        answered = notice.response_for
        addressed = []
        for record in await self.store.find_edocs(answered.organ_id, answered.document_id):
            delivery = await self.store.delivery(record.id, sender.organ_id)
            if delivery is not None:
                addressed.append((record, delivery))
        if not addressed:
            if not await self.store.find_edocs(answered.organ_id, answered.document_id):
                raise UnknownDocument(
                    f"no document {answered.document_id!r} from {answered.organ_id} to answer"
                )
            raise NotAllowed(f"{sender.organ_id} is not a recipient of {answered.document_id!r}")
        followups = [(r, d) for r, d in addressed if r.business_type is not BusinessDocType.NEW]
        originals = [r for r, _ in addressed if r.business_type is BusinessDocType.NEW]
        code = notice.status_code
        if code in FOLLOWUP_ANSWERS and followups:
            return followups[0][0]
        if code in RECALL_ANSWERS:
            unanswered = [r for r, d in followups if d.status_code is None]
            if unanswered:
                return unanswered[0]
        return originals[0] if originals else addressed[0][0]

    @staticmethod
    def _routed(
        agencies: list[Agency],
        document_id: str,
        subject: str,
        status_update: StatusUpdate | None = None,
        recall_of: str | None = None,
    ) -> Routed:
        return Routed(
            recipients=tuple(a.organ_id for a in agencies),
            document_id=document_id,
            subject=subject,
            push_recipients=tuple(a.organ_id for a in agencies if a.endpoint),
            status_update=status_update,
            recall_of=recall_of,
        )
