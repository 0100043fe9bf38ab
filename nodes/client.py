"""The node client: an agency's software talking to the hub over TLS with its certificate.

One :class:`NodeClient` holds one transport (:mod:`nodes.transport`: HTTPS by default) and the
agency's signer (key loaded once). Failed connections are retried with the same bytes; that
is safe because every call is idempotent at the hub (a resent package gets 200 with the first
answer, acks repeat freely). A refusal comes back as the error it is, of the one tree
(:mod:`axis.errors`): a 422 unknown-recipient raises :class:`axis.errors.UnknownRecipient`,
with the hub's problem+json on it (``answer``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import mimetypes
import random
import re
import ssl
from collections.abc import AsyncIterable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote

import pybase64
from cryptography import x509
from lxml import etree

from axis.core import formats, pki
from axis.core.clock import HEADER as SIMULATED_TIME
from axis.core.edxml_dialects import DIALECTS, Dialect
from axis.core.formats import (
    Attachment,
    Business,
    BusinessDocType,
    DocumentChanges,
    Edoc,
    Organ,
    Package,
    Receiver,
    Replacement,
    ResponseFor,
    StatusNotice,
    Trace,
    is_document_id,
    parse_document_id,
)
from axis.core.intake import IntakePolicy, key_info_signer, read_field_package, read_package
from axis.core.receipt import Receipt, verify_receipt
from axis.core.routing import earlier_id
from axis.core.signing import Signer, VerificationPolicy, Verifier
from axis.errors import (
    AxisError,
    InvalidSignature,
    ProfileError,
    RateLimited,
    SenderMismatch,
    UnexpectedAnswer,
    Unreachable,
    from_problem,
)
from nodes.directory import Directory
from nodes.profile import Profile
from nodes.transport import (
    MAX_CONNECTIONS,
    HttpsTransport,
    Meter,
    Request,
    Response,
    Transport,
)

VIETNAM = timezone(timedelta(hours=7), "ICT")


MAX_RETRY_AFTER_S = 5.0  # the longest a client waits on a 429 before asking again


@dataclass(frozen=True)
class Sent:
    """The hub's answer to a package: its JSON body and whether it was new (201)."""

    answer: dict[str, Any]
    created: bool


class NodeClient:
    """An agency's connection to the hub. Use as ``async with NodeClient(profile) as node``."""

    def __init__(
        self,
        profile: Profile,
        *,
        hub_url: str | None = None,
        retries: int = 3,
        timeout_s: float = 60.0,
        max_connections: int = MAX_CONNECTIONS,
        transport: Transport | None = None,
        allow_sha1: bool = False,
        dialect: Dialect | None = None,
        seed: int | None = None,
        meter: Meter | None = None,
        simulated_clock: Callable[[], datetime] | None = None,
        check_built: bool = True,
    ) -> None:
        """``transport``: how requests reach the hub (default: HTTPS to ``hub_url``, or the
        profile's hub, with the agency's certificate). ``allow_sha1``: read packages that
        older agency software signed with SHA-1. ``dialect``: the layout it writes (the
        standard's, or one of the field's: :mod:`axis.core.edxml_dialects`; default: the
        profile's ``dialect``); ``seed`` makes what the dialect draws (attachment UUIDs)
        repeatable. ``meter``: count the default transport's requests and connections.
        ``simulated_clock``: tell the hub what time it is in a simulation, with every request
        (``Axis-Simulated-Time``: only the simulator's own hub listens to it).
        ``check_built``: check each package it builds against the edXML schema before signing
        it, so a bad value fails here, with its reason, rather than at the hub (the simulated
        agencies leave it off: their hub checks every package it takes, and a refusal fails
        the run)."""
        self.simulated_clock = simulated_clock
        self.check_built = check_built
        self.dialect = dialect or DIALECTS[profile.dialect]
        self._rng = random.Random(seed)
        self.profile = profile
        self.hub_url = (hub_url or profile.hub_url).rstrip("/")
        self.retries = retries
        self.signer = Signer(profile.key.read_bytes(), profile.cert.read_bytes())
        # What it fetches it reads as the hub read it: verified, against the CAs the hub trusts.
        trust = pki.TrustStore(tuple(pki.load_certs(profile.ca.read_bytes())))
        self._intake = IntakePolicy(Verifier(VerificationPolicy(allow_sha1=allow_sha1), trust))
        self.transport = transport or HttpsTransport(
            self.hub_url, tls_context(profile), timeout_s, max_connections, meter
        )
        self._directory: Directory | None = None  # fetched when first needed
        self._hub_cert: x509.Certificate | None = None  # hub.pem, read when first needed

    async def __aenter__(self) -> NodeClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self.transport.close()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        data: bytes | AsyncIterable[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """Send one request, retrying when the hub cannot be reached; a 4xx or 5xx answer
        raises the error of the tree its problem type names.

        Raises:
            AxisError: the hub refused (:func:`axis.errors.from_problem`).
            Unreachable: no answer, ``retries`` times over.
        """
        if self.simulated_clock is not None:
            headers = {**(headers or {}), SIMULATED_TIME: self.simulated_clock().isoformat()}
        request = Request(method, path, data, headers or {})
        # A streamed body is spent once sent: only bytes can be sent again, the same bytes.
        retries = self.retries if data is None or isinstance(data, bytes) else 0
        delay = 0.2
        for attempt in range(retries + 1):
            try:
                answer = await self.transport.send(request)
            except Unreachable:
                if attempt == retries:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)  # a restarting hub is back within seconds
                continue
            if answer.status == 429 and attempt < retries:
                # Over its rate or its share of upload slots: as the hub says, a moment later.
                refused = refusal(answer)
                wait = refused.retry_after_s if isinstance(refused, RateLimited) else 1.0
                await asyncio.sleep(min(wait, MAX_RETRY_AFTER_S))
                continue
            if answer.status >= 400:
                raise refusal(answer)
            return answer
        raise AssertionError("unreachable")

    async def _json(self, method: str, path: str) -> Any:
        return json.loads((await self._request(method, path)).body)

    # -- building ---------------------------------------------------------------------------
    #
    # What the builders write, the field's parsers read as meant: each recipient's registered
    # name in To/OrganName (from the hub's directory: they show it to the clerk), From with
    # the agency's name and the details its profile holds, and an update's
    # BussinessDocumentInfo saying what changed. The builders are synchronous (a package is
    # signed in about a millisecond); the directory they name recipients from is fetched by
    # the async methods (:meth:`send`, :meth:`update`, :meth:`replace`), or given with
    # :meth:`prime`.

    def prime(self, directory: Directory) -> None:
        """Use ``directory``, fetched elsewhere (one fetch for many agencies of one hub)."""
        self._directory = directory

    def recipient(self, code: str) -> Organ:
        """``code`` as To names it: with the registered name of its agency.

        A code the directory does not know is written as its own name (the hub refuses such
        a package as unknown-recipient, so no recipient ever reads it).

        Raises:
            LookupError: no directory yet (await :meth:`directory`, or :meth:`prime`).
        """
        if self._directory is None:
            raise LookupError(
                "the hub's directory is not loaded: await node.directory() (or prime) before"
                " building, so that To names each recipient by its registered name"
            )
        return Organ(code, self._directory.name_of(code) or code)

    def build_edoc(
        self,
        to: Sequence[str | Organ],
        subject: str,
        files: Sequence[Path] = (),
        *,
        number: int | None = None,
        notation: str = "CV",
        priority: int = 0,
        content: str | None = None,
        today: date | None = None,
        attachments: Sequence[Attachment] = (),
        at: datetime | None = None,
        business: Business | None = None,
    ) -> bytes:
        """A signed edoc from this agency, ready to post: to ``to`` (codes, named from the
        directory, or Organs as they are). ``at`` (Vietnam time) stamps its date and trace
        instead of now (the simulator's clock); ``attachments`` are added to ``files``;
        ``business`` makes it a replacement (default: a new document).

        Raises:
            LookupError: ``to`` holds codes and no directory is loaded.
        """
        now = at or datetime.now(VIETNAM)
        day = today or now.date()
        number_text = str(number if number is not None else self.profile.next_number())
        edoc = Edoc(
            sender=self.profile.organ(),
            recipients=tuple(r if isinstance(r, Organ) else self.recipient(r) for r in to),
            document_id=formats.make_document_id(self.profile.organ_id, day, number_text, notation),
            code_number=number_text,
            code_notation=notation,
            place=self.profile.place,
            promulgation_date=day,
            doc_type="1",
            type_detail="0",
            type_name="Công văn",
            subject=subject,
            content=content,
            priority=priority,
            traces=(Trace(self.profile.organ_id, now.replace(tzinfo=None, microsecond=0)),),
            business=business or Business(),
            attachments=self._numbered(files, attachments),
        )
        return self._sign(formats.build_edoc(edoc, check=self.check_built))

    def build_status(self, edoc: Edoc, code: str, description: str | None = None) -> bytes:
        """A signed status package from this agency, a recipient of ``edoc``, answering its
        sender (every code but 13, which the sender sends: :meth:`build_take_back`)."""
        if code == "13":
            raise ValueError("status 13 comes from the document's sender: build_take_back")
        return self._status(edoc, edoc.sender.organ_id, code, description)

    def build_take_back(self, edoc: Edoc, recipient: str, description: str | None = None) -> bytes:
        """Status 13 from this agency, ``edoc``'s sender, asking ``recipient`` to take it back
        (it answers 15, agreeing, or 16)."""
        return self._status(edoc, recipient, "13", description)

    def _status(self, edoc: Edoc, other: str, code: str, description: str | None) -> bytes:
        # A recall or an update is answered about the document it acts on, which it may name
        # apart from its own MessageHeader/DocumentId (the SDK's samples do).
        about = edoc.document_id
        if edoc.business.doc_type in (BusinessDocType.RECALL, BusinessDocType.UPDATE):
            about = earlier_id(edoc)[0]
        written, day = f"{edoc.code_number}/{edoc.code_notation}", edoc.promulgation_date
        if is_document_id(about):  # (one the national axis's face let in may be a UUID)
            named = parse_document_id(about, "DocumentId")
            written, day = f"{named.number}/{named.notation}", named.day
        notice = StatusNotice(
            sender=self.profile.organ(),
            response_for=ResponseFor(other, written, day, about),
            status_code=code,
            timestamp=datetime.now(VIETNAM).replace(tzinfo=None, microsecond=0),
            description=description,
        )
        return self._sign(formats.build_status(notice, check=self.check_built))

    def build_followup(
        self,
        edoc: Edoc,
        doc_type: BusinessDocType,
        reason: str | None = None,
        *,
        subject: str | None = None,
        files: Sequence[Path] = (),
        to: Sequence[str] = (),
    ) -> bytes:
        """A signed recall (1) or update (2) of this agency's earlier ``edoc``: the same
        document and DocumentId, Bussiness/DocumentId naming it.

        An update carries what it changes: ``subject`` and ``files`` (the attachments, all of
        them) change the document (DocumentInfo 1), ``to`` changes who receives it
        (DocumentReceiver 1, and its ReceiverList names them). Without ``to`` it goes to the
        document's recipients and carries no ReceiverList: the hub would otherwise hold it
        to that list, and refuse it when one of them has been revoked since. For a
        replacement, see :meth:`build_replacement`.

        Raises:
            ValueError: an update that changes nothing, or changes given to a recall.
            LookupError: ``to`` names codes and no directory is loaded.
        """
        if doc_type not in (BusinessDocType.RECALL, BusinessDocType.UPDATE):
            raise ValueError("build_followup makes recalls and updates; see build_replacement")
        now = datetime.now(VIETNAM).replace(tzinfo=None, microsecond=0)
        followup = replace(edoc, traces=(Trace(self.profile.organ_id, now),))
        if doc_type is BusinessDocType.RECALL:
            if subject is not None or files or to:
                raise ValueError("a recall takes the document back as it was: it changes nothing")
            business = Business(doc_type, edoc.document_id, reason)
        else:
            info = subject is not None or bool(files)
            if not info and not to:
                raise ValueError(
                    "an update changes the document (subject, files) or its recipients"
                )
            recipients = tuple(self.recipient(c) for c in to) or edoc.recipients
            changes = DocumentChanges(
                document_info=info,
                document_receiver=bool(to),
                receivers=tuple(Receiver(r.organ_id) for r in recipients) if to else (),
            )
            followup = replace(
                followup,
                recipients=recipients,
                subject=subject if subject is not None else edoc.subject,
                attachments=self._numbered(files, ()) if files else edoc.attachments,
            )
            business = Business(doc_type, edoc.document_id, reason, changes=changes)
        return self._sign(
            formats.build_edoc(replace(followup, business=business), check=self.check_built)
        )

    def _sign(self, tree: etree._Element) -> bytes:
        """Lay the tree out in this client's dialect, sign it, send it as the dialect does."""
        return self.dialect.finish(self.signer.sign(self.dialect.shape(tree)))

    def _numbered(
        self, files: Sequence[Path], attachments: Sequence[Attachment]
    ) -> tuple[Attachment, ...]:
        """The files, then the attachments, named as the dialect names them (cid:1, …)."""
        read = [_attachment(path) for path in files]
        return tuple(
            replace(a, content_id=self.dialect.content_id(n, self._rng))
            for n, a in enumerate([*read, *attachments], start=1)
        )

    def build_replacement(
        self,
        edoc: Edoc,
        subject: str,
        files: Sequence[Path] = (),
        *,
        to: Sequence[str] = (),
        reason: str | None = None,
        number: int | None = None,
    ) -> bytes:
        """A signed replacement (3) of this agency's earlier ``edoc``: a new document, with a
        number and DocumentId of its own, whose ReplacementInfo names the one it replaces and,
        in OrganIdList, who gets it (``to``, or else the replaced document's recipients).

        Raises:
            LookupError: no directory is loaded.
        """
        recipients = tuple(self.recipient(c) for c in to) or tuple(
            self.recipient(r.organ_id) for r in edoc.recipients
        )
        replacement = Replacement(edoc.document_id, tuple(r.organ_id for r in recipients))
        business = Business(
            BusinessDocType.REPLACE, edoc.document_id, reason, replacements=(replacement,)
        )
        return self.build_edoc(
            recipients,
            subject,
            files,
            number=number,
            notation=edoc.code_notation,
            business=business,
        )

    # -- the node API -----------------------------------------------------------------------

    async def post_package(self, package: bytes | AsyncIterable[bytes]) -> Sent:
        """POST a signed package; 201 or 200 gives :class:`Sent`.

        Raises:
            AxisError: the hub's refusal (e.g. UnknownRecipient, DuplicateConflict).
            Unreachable: the hub cannot be reached."""
        answer = await self._request(
            "POST", "/v1/packages", data=package, headers={"Content-Type": "application/xml"}
        )
        sent = Sent(json.loads(answer.body), created=answer.status == 201)
        self.check_receipt(sent.answer, package if isinstance(package, bytes) else None)
        return sent

    def check_receipt(self, answer: dict[str, Any], package: bytes | None = None) -> Receipt:
        """The answer's receipt, verified against the pinned hub certificate (``hub.pem``),
        and saying what the answer says: this package (its sha256, when ``package`` is
        given), from this agency. A receipt any other key signed proves nothing.

        Raises:
            InvalidSignature: it is not the hub's, or not about this package."""
        receipt = verify_receipt(str(answer.get("receipt", "")), self._hub_certificate())
        expected = (str(answer.get("id")), str(answer.get("sha256")))
        if (receipt.package_id, receipt.sha256) != expected or (
            package is not None and receipt.sha256 != hashlib.sha256(package).hexdigest()
        ):
            raise InvalidSignature("the hub's receipt is about another package")
        if receipt.sender != self.profile.organ_id:
            raise InvalidSignature(f"the hub's receipt names {receipt.sender} as the sender")
        return receipt

    def _hub_certificate(self) -> x509.Certificate:
        if self._hub_cert is None:
            self._hub_cert = pki.load_cert(self.profile.hub_cert.read_bytes())
        return self._hub_cert

    async def send(
        self, to: Sequence[str], subject: str, files: Sequence[Path] = (), **kw: Any
    ) -> Sent:
        """Build, sign and post an edoc, naming each recipient as the directory does."""
        await self._know(to)
        return await self.post_package(self.build_edoc(to, subject, files, **kw))

    async def _know(self, codes: Sequence[str]) -> None:
        """Fetch the directory if it is not here, or (once) if it lacks one of ``codes``."""
        directory = await self.directory()
        if any(code not in directory for code in codes):
            await self.directory(refresh=True)

    async def inbox(self, after: str | None = None, limit: int | None = None) -> dict[str, Any]:
        """One page of pending packages: ``{"items": [...], "next": cursor or None}``."""
        result: dict[str, Any] = await self._json("GET", _inbox_path(after, limit))
        return result

    async def take(
        self, after: str | None = None, limit: int | None = None, max_bytes: int | None = None
    ) -> dict[str, Any]:
        """One page of pending packages carrying the packages themselves (``GET
        /v1/inbox?bodies=1``): each item's ``body`` is its exact bytes, checked against its
        sha256, or None when the page's byte budget (``max_bytes``, the hub's at most) was
        spent before it: :meth:`fetch` that one. Carried packages count as fetched; they stay
        in the inbox until acknowledged.

        Raises:
            UnexpectedAnswer: a body is not what its sha256 says."""
        path = _inbox_path(after, limit, bodies=True, max_bytes=max_bytes)
        page: dict[str, Any] = await self._json("GET", path)
        for item in page["items"]:
            if item.get("body") is None:
                continue
            try:
                body = pybase64.b64decode(item["body"], validate=True)
            except ValueError as exc:  # binascii.Error is one
                raise UnexpectedAnswer(f"package {item['id']} is not base64") from exc
            if hashlib.sha256(body).hexdigest() != item["sha256"]:
                raise UnexpectedAnswer(f"package {item['id']} arrived other than it was stored")
            item["body"] = body
        return page

    async def ack_many(self, package_ids: Sequence[str]) -> dict[str, Any]:
        """Acknowledge several packages in one request (``POST /v1/acks``; idempotent):
        ``{"acknowledged": [ids], "refused": [{"id", "type", "status", "detail"}]}``."""
        answer = await self._request(
            "POST",
            "/v1/acks",
            data=json.dumps({"ids": list(package_ids)}).encode(),
            headers={"Content-Type": "application/json"},
        )
        result: dict[str, Any] = json.loads(answer.body)
        return result

    async def inbox_all(self) -> list[dict[str, Any]]:
        """Every pending package, following the cursor."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = await self.inbox(after=cursor)
            items.extend(page["items"])
            cursor = page["next"]
            if not cursor:
                return items

    async def get(self, package_id: str) -> bytes:
        """The exact bytes the sender signed."""
        return (await self.fetch(package_id))[0]

    async def fetch(self, package_id: str) -> tuple[bytes, str | None]:
        """The exact bytes, and the hub's notes when the national axis's face took the
        package unsigned or deviating from QCVN 102:2016 (None otherwise)."""
        answer = await self._request("GET", f"/v1/packages/{package_id}")
        notes = next((v for k, v in answer.headers.items() if k.lower() == "axis-notes"), None)
        return answer.body, unquote(notes) if notes else None

    async def ack(self, package_id: str) -> None:
        """Confirm receipt (idempotent)."""
        await self._request("POST", f"/v1/packages/{package_id}/ack")

    async def track(self, package_id: str) -> list[dict[str, Any]]:
        """Each recipient's delivery state (sender only)."""
        result: list[dict[str, Any]] = await self._json(
            "GET", f"/v1/packages/{package_id}/deliveries"
        )
        return result

    def read(self, body: bytes, notes: str | None = None) -> Package:
        """A package fetched from the hub, as its signed tree says, once the one intake path
        (:func:`axis.core.intake.read_package`) has checked it: its signer's certificate is
        the one in KeyInfo, names the sender (by the code in From, or another code of that
        agency as the directory fetched last says), and comes from a CA the hub trusts.

        With the hub's ``notes`` (:meth:`fetch`: the national axis's face took it unsigned or
        deviating), it is read as that face read it: a signature it has is still verified;
        without one, the hub's word (its system's HMAC) is all there is.

        Raises:
            InputError: the package is not what its sender signed.
        """
        directory = self._directory
        same = directory.same_agency if directory is not None else None
        signer = partial(key_info_signer, same_agency=same)
        if notes:
            return read_field_package(
                body, self._intake, lambda _: None, signer, strict=False, require_signature=False
            ).package
        return read_package(body, self._intake, signer)

    async def verified(self, body: bytes, notes: str | None = None) -> Package:
        """:meth:`read`, fetching the directory again once if the signer's certificate names
        a code the directory held here does not know as the sender's (an agency that joined,
        or took another code, since).

        Raises:
            InputError: the package is not what its sender signed.
        """
        try:
            return self.read(body, notes)
        except SenderMismatch:
            await self.directory(refresh=True)
            return self.read(body, notes)

    async def directory(self, refresh: bool = False) -> Directory:
        """The hub's agency directory, fetched once (again with ``refresh``)."""
        if self._directory is None or refresh:
            await self.agencies()
        assert self._directory is not None
        return self._directory

    async def edoc(self, package_id: str) -> Edoc:
        """Fetch a package and read it as an edoc (ValueError if it is a status).

        Raises:
            InputError: the package is not what its sender signed.
        """
        package = await self.verified(*await self.fetch(package_id))
        if not isinstance(package, Edoc):
            raise ValueError(f"package {package_id} is a status, not an edoc")
        return package

    async def status(
        self, package_id: str, code: str, description: str | None = None, to: str | None = None
    ) -> Sent:
        """Answer a received edoc with a business status code (01 also acknowledges it); or,
        with 13, ask ``to``, a recipient of an edoc this agency sent, to take it back (``to``
        may be left out when the edoc has one recipient).

        Raises:
            ValueError: 13 without ``to`` for an edoc of several recipients.
        """
        edoc = await self.edoc(package_id)
        if code != "13":
            return await self.post_package(self.build_status(edoc, code, description))
        if to is None:
            if len(edoc.recipients) != 1:
                raise ValueError("status 13 asks one recipient to take the document back: which?")
            to = edoc.recipients[0].organ_id
        return await self.post_package(self.build_take_back(edoc, to, description))

    async def recall(self, package_id: str, reason: str | None = None) -> Sent:
        """Recall (thu hồi) an edoc this agency sent earlier."""
        edoc = await self.edoc(package_id)
        return await self.post_package(self.build_followup(edoc, BusinessDocType.RECALL, reason))

    async def update(
        self,
        package_id: str,
        *,
        subject: str | None = None,
        files: Sequence[Path] = (),
        to: Sequence[str] = (),
        reason: str | None = None,
    ) -> Sent:
        """Update (cập nhật) an edoc this agency sent earlier: its subject or files, or who
        receives it (see :meth:`build_followup`)."""
        edoc = await self.edoc(package_id)
        await self._know([*to, *(r.organ_id for r in edoc.recipients)])
        return await self.post_package(
            self.build_followup(
                edoc, BusinessDocType.UPDATE, reason, subject=subject, files=files, to=to
            )
        )

    async def replace(
        self,
        package_id: str,
        subject: str,
        files: Sequence[Path] = (),
        *,
        to: Sequence[str] = (),
        reason: str | None = None,
    ) -> Sent:
        """Replace (thay thế) an edoc this agency sent earlier with a new document (see
        :meth:`build_replacement`)."""
        edoc = await self.edoc(package_id)
        await self._know([*to, *(r.organ_id for r in edoc.recipients)])
        return await self.post_package(
            self.build_replacement(edoc, subject, files, to=to, reason=reason)
        )

    async def trace(self, package_id: str) -> list[dict[str, Any]]:
        """The hub's own trace of a package it sent: each hop and when."""
        result: list[dict[str, Any]] = await self._json("GET", f"/v1/packages/{package_id}/trace")
        return result

    async def agencies(self) -> list[dict[str, Any]]:
        """The hub's agency directory, as it answers (and kept for :meth:`directory`)."""
        result: list[dict[str, Any]] = await self._json("GET", "/v1/agencies")
        self._directory = Directory.from_json(result)
        return result


def _inbox_path(
    after: str | None, limit: int | None, bodies: bool = False, max_bytes: int | None = None
) -> str:
    """``/v1/inbox`` with the query the arguments ask for."""
    query = ["bodies=1"] if bodies else []
    if after:
        query.append(f"after={after}")
    if limit:
        query.append(f"limit={limit}")
    if max_bytes is not None:
        query.append(f"max_bytes={max_bytes}")
    return "/v1/inbox" + ("?" + "&".join(query) if query else "")


def _attachment(path: Path) -> Attachment:
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return Attachment("", path.name, content_type, path.read_bytes())  # named by the dialect


def tls_context(profile: Profile) -> ssl.SSLContext:
    """TLS to the hub: the hub's own certificate (``hub.pem``), pinned, as the only one
    trusted, for a server (serverAuth) named as the URL says; the agency's certificate and
    key as the client's identity. Trusting the CA instead would let any agency, whose
    certificate the same CA issued, pose as the hub.

    Raises:
        ProfileError: the profile has no hub.pem."""
    if not profile.hub_cert.exists():
        raise ProfileError(
            f"{profile.hub_cert} is missing: the hub's certificate, which the client pins"
            " (copy DATA/hub.pem there)"
        )
    context = ssl.create_default_context(cadata=profile.hub_cert.read_text(encoding="ascii"))
    # The pinned certificate is the trust anchor itself, whoever issued it.
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.load_cert_chain(profile.cert, profile.key)
    return context


def refusal(answer: Response) -> AxisError:
    """The error a 4xx or 5xx answer stands for: its problem+json read into the tree, or
    :class:`axis.errors.UnexpectedAnswer` for anything else (a proxy's HTML page, say)."""
    try:
        problem = json.loads(answer.body)
    except ValueError:
        problem = None
    if not isinstance(problem, dict):
        text = answer.body[:200].decode(errors="replace")
        problem = {"type": "about:blank", "status": answer.status, "detail": text}
    # Whole seconds (RFC 9110); an HTTP date or anything else is left out.
    seconds = re.fullmatch(r"[0-9]{1,9}", answer.headers.get("Retry-After", ""))
    return from_problem(answer.status, problem, float(seconds[0]) if seconds else None)
