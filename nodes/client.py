"""The node client: an agency's software talking to the hub over TLS with its certificate.

One :class:`NodeClient` holds one HTTPS session and the agency's signer (key loaded once).
Failed connections are retried with the same bytes; that is safe because every call is
idempotent at the hub (a resent package gets 200 with the first answer, acks repeat freely).
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

from axis.core import formats
from axis.core.formats import (
    Attachment,
    Business,
    BusinessDocType,
    Edoc,
    Organ,
    ResponseFor,
    StatusNotice,
    Trace,
)
from axis.core.signing import Signer
from nodes.profile import Profile

VIETNAM = timezone(timedelta(hours=7), "ICT")
# Kept-alive TLS connections one agency holds to the hub; more requests than this wait for a
# free one. Without a bound an agency keeps as many as it ever had requests in flight: aiohttp
# reuses its oldest idle connection first, so under steady traffic none idles long enough to
# be closed, and each costs the hub (and the client) about 300 KiB (asyncio's TLS read buffer
# alone is 256 KiB).
MAX_CONNECTIONS = 2


class HubError(Exception):
    """The hub refused a request: carries the problem+json it answered with."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.type = str(problem.get("type", "about:blank"))
        self.detail = str(problem.get("detail", ""))
        super().__init__(f"{status} {self.type.rsplit(':', 1)[-1]}: {self.detail}")


class HubUnreachable(Exception):
    """The hub could not be reached, even after retries."""


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
    ) -> None:
        self.profile = profile
        self.max_connections = max_connections
        self.hub_url = (hub_url or profile.hub_url).rstrip("/")
        self.retries = retries
        self.signer = Signer(profile.key.read_bytes(), profile.cert.read_bytes())
        self._ssl = ssl.create_default_context(cafile=str(profile.ca))
        self._ssl.load_cert_chain(profile.cert, profile.key)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

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
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=self.max_connections),
                timeout=self._timeout,
            )
        return self._session

    async def _request(
        self,
        method: str,
        path: str,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes, str]:
        """Send one request, retrying connection failures; HubError on a 4xx/5xx answer."""
        delay = 0.2
        for attempt in range(self.retries + 1):
            try:
                async with self._http().request(
                    method, self.hub_url + path, data=data, headers=headers
                ) as response:
                    body = await response.read()
                    if response.status >= 400:
                        raise HubError(response.status, _problem(response.status, body))
                    return response.status, body, response.content_type
            except (TimeoutError, aiohttp.ClientConnectionError) as exc:
                if attempt == self.retries:
                    raise HubUnreachable(f"cannot reach the hub at {self.hub_url}: {exc}") from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)  # a restarting hub is back within seconds
        raise AssertionError("unreachable")

    async def _json(self, method: str, path: str) -> Any:
        _, body, _ = await self._request(method, path)
        return json.loads(body)

    # -- building ---------------------------------------------------------------------------

    def build_edoc(
        self,
        to: Sequence[str],
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
    ) -> bytes:
        """A signed edoc from this agency, ready to post. ``at`` (Vietnam time) stamps its
        date and trace instead of now (the simulator's clock); ``attachments`` are added to
        ``files``."""
        now = at or datetime.now(VIETNAM)
        day = today or now.date()
        number_text = str(number if number is not None else self.profile.next_number())
        edoc = Edoc(
            sender=Organ(self.profile.organ_id, self.profile.name or self.profile.organ_id),
            recipients=tuple(Organ(r, r) for r in to),
            document_id=formats.make_document_id(self.profile.organ_id, day, number_text, notation),
            code_number=number_text,
            code_notation=notation,
            place="Hà Nội",
            promulgation_date=day,
            doc_type="1",
            type_detail="0",
            type_name="Công văn",
            subject=subject,
            content=content,
            priority=priority,
            traces=(Trace(self.profile.organ_id, now.replace(tzinfo=None, microsecond=0)),),
            attachments=(
                *(_attachment(i, path) for i, path in enumerate(files, start=1)),
                *(
                    replace(a, content_id=f"cid:{len(files) + i}")
                    for i, a in enumerate(attachments, start=1)
                ),
            ),
        )
        return self.signer.sign(formats.build_edoc(edoc))

    def build_status(self, edoc: Edoc, code: str, description: str | None = None) -> bytes:
        """A signed status package from this agency about ``edoc``, which it received."""
        notice = StatusNotice(
            sender=Organ(self.profile.organ_id, self.profile.name or self.profile.organ_id),
            response_for=ResponseFor(
                edoc.sender.organ_id,
                f"{edoc.code_number}/{edoc.code_notation}",
                edoc.promulgation_date,
                edoc.document_id,
            ),
            status_code=code,
            timestamp=datetime.now(VIETNAM).replace(tzinfo=None, microsecond=0),
            description=description,
        )
        return self.signer.sign(formats.build_status(notice))

    def build_followup(
        self, edoc: Edoc, doc_type: BusinessDocType, reason: str | None = None
    ) -> bytes:
        """A signed recall, update or replacement of this agency's earlier ``edoc``: the same
        document, BussinessDocType 1/2/3, and Bussiness/DocumentId naming the original."""
        now = datetime.now(VIETNAM).replace(tzinfo=None, microsecond=0)
        followup = replace(
            edoc,
            traces=(Trace(self.profile.organ_id, now),),
            business=Business(doc_type, edoc.document_id, reason),
        )
        return self.signer.sign(formats.build_edoc(followup))

    # -- the node API -----------------------------------------------------------------------

    async def post_package(self, package: bytes) -> Sent:
        """POST a signed package; 201 or 200 gives :class:`Sent`, anything else HubError."""
        status, body, _ = await self._request(
            "POST", "/v1/packages", data=package, headers={"Content-Type": "application/xml"}
        )
        return Sent(json.loads(body), created=status == 201)

    async def send(
        self, to: Sequence[str], subject: str, files: Sequence[Path] = (), **kw: Any
    ) -> Sent:
        """Build, sign and post an edoc."""
        return await self.post_package(self.build_edoc(to, subject, files, **kw))

    async def inbox(self, after: str | None = None, limit: int | None = None) -> dict[str, Any]:
        """One page of pending packages: ``{"items": [...], "next": cursor or None}``."""
        query = []
        if after:
            query.append(f"after={after}")
        if limit:
            query.append(f"limit={limit}")
        path = "/v1/inbox" + ("?" + "&".join(query) if query else "")
        result: dict[str, Any] = await self._json("GET", path)
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
        _, body, _ = await self._request("GET", f"/v1/packages/{package_id}")
        return body

    async def ack(self, package_id: str) -> None:
        """Confirm receipt (idempotent)."""
        await self._request("POST", f"/v1/packages/{package_id}/ack")

    async def track(self, package_id: str) -> list[dict[str, Any]]:
        """Each recipient's delivery state (sender only)."""
        result: list[dict[str, Any]] = await self._json(
            "GET", f"/v1/packages/{package_id}/deliveries"
        )
        return result

    async def edoc(self, package_id: str) -> Edoc:
        """Fetch a package and read it as an edoc (ValueError if it is a status)."""
        package = formats.parse_package(formats.load_xml(await self.get(package_id)))
        if not isinstance(package, Edoc):
            raise ValueError(f"package {package_id} is a status, not an edoc")
        return package

    async def status(self, package_id: str, code: str, description: str | None = None) -> Sent:
        """Answer a received edoc with a business status code (01 also acknowledges it)."""
        return await self.post_package(
            self.build_status(await self.edoc(package_id), code, description)
        )

    async def recall(self, package_id: str, reason: str | None = None) -> Sent:
        """Recall (thu hồi) an edoc this agency sent earlier."""
        edoc = await self.edoc(package_id)
        return await self.post_package(self.build_followup(edoc, BusinessDocType.RECALL, reason))

    async def trace(self, package_id: str) -> list[dict[str, Any]]:
        """The hub's own trace of a package it sent: each hop and when."""
        result: list[dict[str, Any]] = await self._json("GET", f"/v1/packages/{package_id}/trace")
        return result

    async def agencies(self) -> list[dict[str, Any]]:
        """The hub's agency directory."""
        result: list[dict[str, Any]] = await self._json("GET", "/v1/agencies")
        return result


def _attachment(index: int, path: Path) -> Attachment:
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return Attachment(f"cid:{index}", path.name, content_type, path.read_bytes())


def _problem(status: int, body: bytes) -> dict[str, Any]:
    import json

    try:
        parsed = json.loads(body)
        if isinstance(parsed, dict):
            return parsed
    except ValueError:
        pass
    return {"type": "about:blank", "status": status, "detail": body[:200].decode(errors="replace")}
