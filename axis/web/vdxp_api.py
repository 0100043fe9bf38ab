"""The national axis's face on the wire: ``{prefix}/{operation}`` as VNPT's SDK calls it.

Thin: it hands the headers exactly as received (names as written, duplicates kept, values as
their bytes) and the body to :class:`axis.usecases.national.NationalFace`, and encodes what it
answers. Every answer, refusals included, is the SDK's JSON shape (``status``, ``ErrorCode``,
``ErrorDesc``, ``DocId`` on a refusal), ASCII only; the HTTP status is a real one for operators
and curl (the SDK ignores it). ``Expect: 100-continue`` is answered by aiohttp as the body is
read.
"""

from __future__ import annotations

from aiohttp import web

from axis.core import vdxp
from axis.core.vdxp import CallFailed, Fault
from axis.errors import TooLarge
from axis.http.body import read_body
from axis.http.problems import access_log
from axis.http.sockets import ConnectionGate, recycling
from axis.usecases.national import NationalFace
from axis.web.metrics import HubMetrics

FACE = web.AppKey("national_face", NationalFace)
FACE_METRICS = web.AppKey("national_face_metrics", HubMetrics)
OPERATIONS = frozenset(op.value for op in vdxp.Operation)


def vdxp_app(
    face: NationalFace, metrics: HubMetrics, prefix: str, gate: ConnectionGate | None = None
) -> web.Application:
    """The application of the third listener (``[vdxp]``); ``gate``: its listener's, whose
    connections are closed once they have carried their share of requests."""
    app = web.Application(
        middlewares=[*([recycling(gate)] if gate else []), access_log],
        client_max_size=face.hub.settings.limits.max_body_bytes + 1,
    )
    app[FACE] = face
    app[FACE_METRICS] = metrics
    path = prefix.rstrip("/") + "/{operation}"
    app.router.add_route("POST", path, handle)
    app.router.add_route("GET", path, handle)
    return app


async def handle(request: web.Request) -> web.Response:
    face, metrics = request.app[FACE], request.app[FACE_METRICS]
    operation = request.match_info["operation"]
    # Values as their bytes say: the HMAC is over the exact text the client signed.
    sent = [
        (k.decode("latin-1"), v.decode("utf-8", "surrogateescape")) for k, v in request.raw_headers
    ]
    limits = face.hub.settings.limits

    async def body() -> bytes:
        # Read only once the caller is authenticated, within the node API's limits (size,
        # a body that stalls or trickles); sendEdoc reads it holding an upload slot.
        try:
            return await read_body(
                request, limits.max_body_bytes, limits.body_idle_timeout_s, limits.body_timeout_s
            )
        except TooLarge as exc:
            raise CallFailed(Fault.TOO_LARGE, exc.detail) from exc

    answer = await face.call(operation, sent, body)
    # Label by the operations there are: a stranger's random paths add no series.
    label = operation if operation in OPERATIONS else "unknown"
    if isinstance(answer.body, bytes):
        metrics.vdxp_calls.labels(label, "0").inc()
        return web.Response(body=answer.body, content_type="application/xml", charset="utf-8")
    metrics.vdxp_calls.labels(label, str(answer.body.get("ErrorCode", ""))).inc()
    for system, rule in answer.deviations:
        metrics.vdxp_deviations.labels(system, rule).inc()
    return web.Response(
        body=vdxp.encode(answer.body), status=answer.status, content_type="application/json"
    )
