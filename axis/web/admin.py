"""The operator API (SPEC §6): plain HTTP on loopback, bearer token or a dashboard login.

``/healthz`` is open. Everything else needs ``Authorization: Bearer <DATA/admin.token>``, or
the session cookie that ``POST /login`` sets after checking the same token (HttpOnly,
SameSite=Strict, so page scripts cannot read it and other sites cannot send it).

A session is a signed cookie, not a row in one process's memory: ``EXPIRY.NONCE.MAC``, the MAC
an HMAC-SHA256 under a key derived from the admin token. Every worker of ``axis serve
--workers N``, on every host, reads the same token, so any of them checks a cookie another
issued. Signing out deletes the cookie in the browser; a copy taken before stays valid until
it expires (12 hours), unless the operator replaces ``DATA/admin.token`` and restarts the hub
(each worker reads the token when it starts), which ends every session.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from datetime import date
from importlib import resources

from aiohttp import web
from aiohttp.typedefs import Handler

from axis.core.lifecycle import DeliveryState
from axis.errors import NotAllowed, SchemaViolation
from axis.http.problems import problem_middleware
from axis.usecases import operations
from axis.usecases.hub import Hub
from axis.web import node_api
from axis.web.keys import ADMIN_TOKEN, HUB, METRICS, SESSION_KEY
from axis.web.metrics import HubMetrics

COOKIE = "axis_session"
SESSION_S = 12 * 3600
OPEN_PATHS = frozenset({"/healthz", "/login"})


def _static(name: str) -> str:
    return (resources.files("axis.web") / "static" / name).read_text(encoding="utf-8")


def session_key(token: str) -> bytes:
    """The key that signs dashboard sessions: derived from the admin token (never the token
    itself, which the cookie must not reveal anything of)."""
    return hmac.new(token.encode(), b"axis dashboard session v1", hashlib.sha256).digest()


def _mac(key: bytes, payload: str) -> str:
    return hmac.new(key, payload.encode("ascii"), hashlib.sha256).hexdigest()


def new_session(key: bytes, now: float) -> str:
    """A session cookie valid for SESSION_S from ``now`` (Unix time: workers share no other
    clock)."""
    payload = f"{int(now) + SESSION_S}.{secrets.token_urlsafe(16)}"
    return f"{payload}.{_mac(key, payload)}"


_SESSION_RE = re.compile(r"([0-9]{1,12})\.([A-Za-z0-9_-]{1,64})\.([0-9a-f]{64})")


def session_valid(key: bytes, cookie: str, now: float) -> bool:
    """Whether ``cookie`` is a session this hub's key signed and it has not expired."""
    # fullmatch on ASCII classes: str.isdigit() would take "²", which int() then refuses.
    parts = _SESSION_RE.fullmatch(cookie)
    if parts is None:
        return False
    expires, nonce, mac = parts.groups()
    return hmac.compare_digest(mac, _mac(key, f"{expires}.{nonce}")) and int(expires) > now


def _session_valid(request: web.Request) -> bool:
    return session_valid(request.app[SESSION_KEY], request.cookies.get(COOKIE, ""), time.time())


def _bearer_valid(request: web.Request) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    return hmac.compare_digest(given.strip().encode(), request.app[ADMIN_TOKEN].encode())


@web.middleware
async def operator_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in OPEN_PATHS or _bearer_valid(request) or _session_valid(request):
        return await handler(request)
    if request.path == "/dashboard" and request.method == "GET":
        raise web.HTTPSeeOther("/login")
    raise NotAllowed("the operator API needs Authorization: Bearer <DATA/admin.token>")


# Everything is inline and same-origin: no outside network, no framing.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline';"
    " script-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
}


def _page(name: str, status: int = 200, error: str = "") -> web.Response:
    return web.Response(
        status=status,
        text=_static(name).replace("{error}", error),
        content_type="text/html",
        headers=PAGE_HEADERS,
    )


async def login_page(request: web.Request) -> web.Response:
    return _page("login.html")


async def login(request: web.Request) -> web.Response:
    form = await request.post()
    token = str(form.get("token", "")).strip()
    if not token or not hmac.compare_digest(token.encode(), request.app[ADMIN_TOKEN].encode()):
        return _page("login.html", 403, "That is not this hub's admin token.")
    session = new_session(request.app[SESSION_KEY], time.time())
    response = web.HTTPSeeOther("/dashboard")
    response.set_cookie(
        COOKIE, session, httponly=True, samesite="Strict", max_age=SESSION_S, path="/"
    )
    raise response


async def logout(request: web.Request) -> web.Response:
    response = web.HTTPSeeOther("/login")
    response.del_cookie(COOKIE, path="/")
    raise response


async def dashboard_page(request: web.Request) -> web.Response:
    return _page("dashboard.html")


async def dashboard_data(request: web.Request) -> web.Response:
    return web.json_response(await operations.dashboard(request.app[HUB].store))


def _day(request: web.Request, name: str) -> date | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise SchemaViolation(f"{name} must be a day, YYYY-MM-DD") from None


async def stats(request: web.Request) -> web.Response:
    day_from, day_to = _day(request, "from"), _day(request, "to")
    if day_from and day_to and day_from > day_to:
        raise SchemaViolation("from must not be after to")
    return web.json_response(await operations.statistics(request.app[HUB].store, day_from, day_to))


async def log_page(request: web.Request) -> web.Response:
    store = request.app[HUB].store
    if request.query.get("tail"):
        entries = await store.log_tail(node_api.int_param(request, "tail", 50, 1000))
    else:
        after = node_api.int_param(request, "after", 0, 2**62)
        entries = await store.log_entries(
            after, max(1, node_api.int_param(request, "limit", 100, 1000))
        )
    return web.json_response(
        {
            "entries": [e.fields() | {"hash": e.hash} for e in entries],
            "next": entries[-1].seq if entries else None,
        }
    )


async def deliveries(request: web.Request) -> web.Response:
    """``GET /v1/deliveries?state=failed&limit=``: deliveries in one state, newest first."""
    raw = request.query.get("state", DeliveryState.FAILED.value)
    try:
        state = DeliveryState(raw)
    except ValueError:
        raise SchemaViolation(
            f"state must be one of {', '.join(s.value for s in DeliveryState)}"
        ) from None
    found = await request.app[HUB].store.deliveries_in(
        state, max(1, node_api.int_param(request, "limit", 100, 1000))
    )
    return web.json_response([d.as_json() for d in found])


async def metrics(request: web.Request) -> web.Response:
    body = await request.app[METRICS].exposition(request.app[HUB].store)
    return web.Response(body=body, content_type="text/plain", charset="utf-8")


def admin_app(hub: Hub, token: str, hub_metrics: HubMetrics) -> web.Application:
    """The operator application. It shares the node app's Hub and store; the node app owns
    their lifetime."""
    app = web.Application(middlewares=[problem_middleware, operator_auth])
    app[HUB] = hub
    app[ADMIN_TOKEN] = token
    app[METRICS] = hub_metrics
    app[SESSION_KEY] = session_key(token)
    app.router.add_get("/healthz", node_api.healthz)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/dashboard", dashboard_page)
    app.router.add_get("/v1/dashboard", dashboard_data)
    app.router.add_get("/v1/stats", stats)
    app.router.add_get("/v1/log", log_page)
    app.router.add_get("/v1/deliveries", deliveries)
    app.router.add_get("/metrics", metrics)
    return app
