"""The node API of SPEC §5. Handlers are thin: identity, body, then one call into the Hub."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import quote

import pybase64
from aiohttp import web

from axis.errors import SchemaViolation, UnsupportedMediaType
from axis.http.body import XML_TYPES, read_body
from axis.http.keys import AGENCY, NOTES_HEADER, PACKAGE_ID
from axis.store.base import Agency, PackageRecord
from axis.usecases.hub import Taken
from axis.web.keys import HUB, METRICS

SEND_CHUNK = 64 * 1024  # a package goes out in pieces of this size
log = logging.getLogger("axis.web")


async def current_agency(request: web.Request) -> Agency:
    """The agency behind the TLS client certificate of this request."""
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    agency = await request.app[HUB].authenticate(der)
    request[AGENCY] = agency.organ_id
    return agency


async def post_package(request: web.Request) -> web.Response:
    agency = await current_agency(request)
    if request.content_type not in XML_TYPES:
        raise UnsupportedMediaType(
            f"send the package as application/xml, not {request.content_type!r}"
        )
    hub = request.app[HUB]
    limits = hub.settings.limits
    async with hub.upload_slot(agency):
        body = await read_body(
            request,
            limits.max_body_bytes,
            limits.body_idle_timeout_s,
            limits.body_timeout_s,
            limits.min_body_bytes_per_s,
        )
        accepted = await hub.accept(agency, body)
    request[PACKAGE_ID] = accepted.answer["id"]
    if accepted.created:
        request.app[METRICS].received.labels(accepted.answer["kind"]).inc()
    return web.json_response(accepted.answer, status=201 if accepted.created else 200)


def int_param(request: web.Request, name: str, default: int, most: int = 2**62) -> int:
    """A non-negative integer query parameter, at most ``most``; 422 for anything else."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:  # "²" is a digit to Python
        raise SchemaViolation(f"the query parameter {name} must be a non-negative integer")
    return min(int(raw), most)


def bool_param(request: web.Request, name: str) -> bool:
    """A yes/no query parameter (``1``/``true``, ``0``/``false``, or absent); 422 else."""
    raw = request.query.get(name, "").lower()
    if raw not in _BOOLEANS:
        raise SchemaViolation(f"the query parameter {name} must be 1, 0, true or false")
    return _BOOLEANS[raw]


_BOOLEANS = {"": False, "0": False, "false": False, "1": True, "true": True}


def _item(p: PackageRecord) -> dict[str, Any]:
    return {
        "id": p.id,
        "kind": p.kind.value,
        "from": p.sender,
        "document_id": p.document_id,
        "subject": p.subject,
        "received_at": p.received_at.isoformat(timespec="milliseconds"),
        # Taken on the national axis's face: unsigned, or deviating (read it so).
        "notes": p.notes or None,
    }


async def inbox(request: web.Request) -> web.StreamResponse:
    agency = await current_agency(request)
    hub = request.app[HUB]
    limits = hub.settings.limits
    after = int_param(request, "after", 0)
    limit = int_param(request, "limit", limits.inbox_page)
    if bool_param(request, "bodies"):
        max_bytes = int_param(request, "max_bytes", limits.inbox_bytes)
        # The slot bounds the bodies held while a page is read and encoded; it is given back
        # before sending, so a client that reads slowly holds its one page, not a slot.
        async with hub.carrying:
            body = _carried(*await hub.take(agency, after, limit, max_bytes))
        response = web.StreamResponse(headers={"Content-Type": "application/json; charset=utf-8"})
        return await _send_in_pieces(request, response, body, "an inbox page")
    records, cursor = await hub.inbox(agency, after, limit)
    items = [_item(p) for p in records]
    return web.json_response({"items": items, "next": None if cursor is None else str(cursor)})


def _carried(taken: list[Taken], cursor: int | None) -> bytes:
    """The page with the packages themselves, base64 in the JSON (exact bytes, and their
    sha256 to check them by): one request where a page of GETs would be many. The base64 is
    spliced in, not passed through the JSON encoder: its alphabet needs no escaping, and
    scanning megabytes of it for escapes cost more than everything else in the read."""
    parts = [b'{"items": [']
    for n, t in enumerate(taken):
        meta = json.dumps(_item(t.record) | {"sha256": t.record.sha256, "size": t.size})
        parts.append(b", " if n else b"")
        parts.append(meta[:-1].encode())
        if t.body is None:
            parts.append(b', "body": null}')
        else:
            parts += (b', "body": "', pybase64.b64encode(t.body), b'"}')
    parts.append(f'], "next": {json.dumps(None if cursor is None else str(cursor))}}}'.encode())
    return b"".join(parts)


ACKS_BODY_BYTES = 64 * 1024  # a batch of ids: 500 of 32 hex digits, quoted, fit in 20 KB
ACKS_BODY_TIMEOUT_S = 30.0  # that much arrives in well under a second


async def ack_many(request: web.Request) -> web.Response:
    agency = await current_agency(request)
    if request.content_type != "application/json":
        raise UnsupportedMediaType(
            f'send {{"ids": [...]}} as application/json, not {request.content_type!r}'
        )
    hub = request.app[HUB]
    limits = hub.settings.limits
    body = await read_body(
        request,
        ACKS_BODY_BYTES,
        limits.body_idle_timeout_s,
        ACKS_BODY_TIMEOUT_S,
        limits.min_body_bytes_per_s,
    )
    try:
        ids = json.loads(body)["ids"]
    except (ValueError, TypeError, KeyError) as exc:
        raise SchemaViolation('the body must be JSON: {"ids": ["package id", ...]}') from exc
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise SchemaViolation('"ids" must be a list of package ids (strings)')
    if len(ids) > limits.ack_batch:
        raise SchemaViolation(f"at most {limits.ack_batch} ids in one acknowledgement")
    acknowledged, refused = await hub.ack_many(agency, ids)
    return web.json_response(
        {
            "acknowledged": acknowledged,
            "refused": [
                {"id": pid[:64], "type": e.type_uri, "status": e.status, "detail": e.detail}
                for pid, e in refused
            ],
        }
    )


async def get_package(request: web.Request) -> web.StreamResponse:
    agency = await current_agency(request)
    hub = request.app[HUB]
    record, body = await hub.fetch_record(agency, request.match_info["id"])
    response = web.StreamResponse(headers={"Content-Type": "application/xml; charset=utf-8"})
    if record.notes:  # taken on the national axis's face: unsigned or deviating (recorded)
        response.headers[NOTES_HEADER] = quote(record.notes, safe=" ;:,()'<>=")
    return await _send_in_pieces(request, response, body, f"package {record.id}")


async def _send_in_pieces(
    request: web.Request, response: web.StreamResponse, body: bytes, what: str
) -> web.StreamResponse:
    """Send ``body`` in pieces, each waiting until the client has taken the last
    (back-pressure): a client that stops reading holds its one body, not copies queued in
    buffers, and is cut off after send_timeout_s. Small writes also keep the TLS layer's
    buffers small: OpenSSL's memory BIO keeps the largest write it ever held for the
    connection's life (a megabyte written at once cost a megabyte per kept-alive connection)."""
    response.content_length = len(body)
    await response.prepare(request)
    view = memoryview(body)
    try:
        async with asyncio.timeout(request.app[HUB].settings.limits.send_timeout_s):
            for start in range(0, len(view), SEND_CHUNK):
                await response.write(view[start : start + SEND_CHUNK])
    except TimeoutError:
        log.warning("cut off %s: it stopped reading %s", request.get(AGENCY), what)
        if request.transport is not None:
            request.transport.abort()
        return response
    await response.write_eof()
    return response


async def ack(request: web.Request) -> web.Response:
    agency = await current_agency(request)
    await request.app[HUB].ack(agency, request.match_info["id"])
    return web.Response(status=204)


async def deliveries(request: web.Request) -> web.Response:
    agency = await current_agency(request)
    record, found = await request.app[HUB].tracked(agency, request.match_info["id"])
    notes = record.notes or None
    return web.json_response([d.as_json() | {"notes": notes} for d in found])


async def trace(request: web.Request) -> web.Response:
    agency = await current_agency(request)
    hops = await request.app[HUB].trace(agency, request.match_info["id"])
    return web.json_response(
        [
            {
                "organ_id": h.organ_id,
                "event": h.event,
                "detail": h.detail,
                "at": h.at.isoformat(timespec="milliseconds"),
            }
            for h in hops
        ]
    )


async def agencies(request: web.Request) -> web.Response:
    await current_agency(request)
    return web.json_response(await request.app[HUB].directory())


async def healthz(request: web.Request) -> web.Response:
    await request.app[HUB].store.ping()  # raises Unavailable (503) when it cannot accept
    return web.json_response({"status": "ok"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/v1/packages", post_package)
    app.router.add_get("/v1/inbox", inbox)
    app.router.add_get("/v1/packages/{id}", get_package)
    app.router.add_post("/v1/packages/{id}/ack", ack)
    app.router.add_post("/v1/acks", ack_many)
    app.router.add_get("/v1/packages/{id}/deliveries", deliveries)
    app.router.add_get("/v1/packages/{id}/trace", trace)
    app.router.add_get("/v1/agencies", agencies)
