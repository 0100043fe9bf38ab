"""A simulated agency whose software reaches the hub through the national axis's own API
(VNPT's SDK), as ``axis simulate --vdxp-share`` puts a share of the country on it.

It is a :class:`~nodes.client.NodeClient` for everything an agency's software does on its
own (build and sign packages, read what it fetched, the directory), and a
:class:`~nodes.vdxp.VdxpClient` for every exchange with the hub: sendEdoc, the received lists
(edocs and statuses), getEdoc, ``updateStatus done``. The simulation drives both kinds of
agency through the same methods; a refusal on this face raises the same error the node API
would, so the simulation counts it the same way.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from axis.errors import PROBLEM_PREFIX, AxisError, UnexpectedAnswer, Unreachable, from_problem
from nodes.client import NodeClient, Sent
from nodes.profile import Profile
from nodes.vdxp import VdxpAnswer, VdxpClient, VdxpFailed

NOTES_KEPT = 10_000  # notes of listed packages remembered until fetched
T = TypeVar("T")


def system_of(organ_id: str) -> str:
    """The system a simulated agency's software is configured with (one each: the SDK is
    set up per installation)."""
    return f"SIM-{organ_id}"


class NationalAgency(NodeClient):
    """A simulated agency on the national axis's face (see the module doc)."""

    def __init__(self, profile: Profile, sdk: VdxpClient, **kw: Any) -> None:
        super().__init__(profile, **kw)
        self.sdk = sdk
        # What the list said of each package, oldest first: an OrderedDict, whose oldest key
        # goes at once (a dict's is found past every key deleted since it last compacted).
        self._notes: OrderedDict[str, str | None] = OrderedDict()

    async def close(self) -> None:
        await self.sdk.close()
        await super().close()

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call`` again while the hub cannot be reached (a restarting hub is back within
        seconds), as the node client retries; every call of this face may be repeated (a
        package sent again is the same package, answered with the same DocId)."""
        delay = 0.2
        for attempt in range(self.retries + 1):
            try:
                return await call()
            except Unreachable:
                if attempt == self.retries:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        raise AssertionError("not reached")

    async def post_package(self, package: bytes | AsyncIterable[bytes]) -> Sent:
        """sendEdoc, ``from`` the agency, recipients from the edXML (as Bkav's code does).

        Raises:
            AxisError: the face's refusal, as the node API would name it."""
        if not isinstance(package, bytes):
            package = b"".join([chunk async for chunk in package])
        body = package
        answer = await self._retrying(lambda: self.sdk.send_edoc(body, self.profile.organ_id))
        _raise_for(answer)
        return Sent({"id": str(answer.fields["DocId"]), "notes": answer.error_desc}, True)

    async def inbox(self, after: str | None = None, limit: int | None = None) -> dict[str, Any]:
        """What waits: the edocs and the statuses lists, as one page of items."""
        items: list[dict[str, Any]] = []
        for kind in ("edoc", "status"):
            listed = partial(self.sdk.get_received_edoc_list, messagetype=kind, page_size=limit)
            answer = await self._retrying(listed)
            _raise_for(answer)
            for entry in answer.fields.get("data") or []:
                items.append({"id": entry["docId"], "kind": kind, "from": entry["from"]})
                self._remember(entry["docId"], entry.get("notes") or None)
        return {"items": items[:limit] if limit else items, "next": None}

    def _remember(self, doc_id: str, notes: str | None) -> None:
        self._notes[doc_id] = notes
        if len(self._notes) > NOTES_KEPT:
            self._notes.popitem(last=False)

    async def fetch(self, package_id: str) -> tuple[bytes, str | None]:
        """getEdoc, and what the received list said of the package."""
        try:
            body = await self._retrying(lambda: self.sdk.get_edoc(package_id))
        except VdxpFailed as exc:
            _raise_for(exc.answer)
            raise  # (not reached: a failed answer always raises)
        return body, self._notes.get(package_id)

    async def ack(self, package_id: str) -> None:
        """updateStatus done: the acknowledgement."""
        _raise_for(await self._retrying(lambda: self.sdk.update_status(package_id, "done")))
        self._notes.pop(package_id, None)

    async def take(
        self, after: str | None = None, limit: int | None = None, max_bytes: int | None = None
    ) -> dict[str, Any]:
        """The received lists, each package fetched with getEdoc (this face has no read that
        carries them)."""
        page = await self.inbox(after, limit)
        for item in page["items"]:
            try:
                item["body"], item["notes"] = await self.fetch(item["id"])
            except AxisError as exc:
                if not exc.remote:
                    raise
                item["body"] = None  # refused now: the caller fetches it alone, and sees why
        return page

    async def ack_many(self, package_ids: Sequence[str]) -> dict[str, Any]:
        """updateStatus done, one package at a time (this face acknowledges no batch)."""
        acknowledged: list[str] = []
        refused: list[dict[str, Any]] = []
        for package_id in package_ids:
            try:
                await self.ack(package_id)
            except AxisError as exc:
                if not exc.remote:
                    raise
                refused.append({"id": package_id, "type": exc.type_uri, "detail": exc.detail})
            else:
                acknowledged.append(package_id)
        return {"acknowledged": acknowledged, "refused": refused}


def _raise_for(answer: VdxpAnswer) -> None:
    """A FAIL answer as the node API's error: the native problem when the face names one."""
    if answer.ok:
        return
    problem = answer.fields.get("problem")
    body = {"detail": answer.error_desc, "error_code": answer.error_code}
    if problem:
        error: AxisError = from_problem(
            answer.http_status, {"type": PROBLEM_PREFIX + str(problem), **body}
        )
    else:
        error = UnexpectedAnswer(answer.error_desc, status=answer.http_status, answer=body)
    raise error
