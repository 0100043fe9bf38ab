"""One middleware that turns every error into ``application/problem+json`` (RFC 9457)."""

from __future__ import annotations

import json
import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from axis.errors import PROBLEM_PREFIX, AxisError, RateLimited
from axis.http.keys import AGENCY, PACKAGE_ID, PROBLEM

log = logging.getLogger("axis.web")

PROBLEM_JSON = "application/problem+json"

# aiohttp's own refusals (no route, wrong method, a body over client_max_size) keep their
# status and get the nearest SPEC problem name, or RFC 9457's "about:blank".
_HTTP_PROBLEMS = {
    404: "unknown-document",
    405: "not-allowed",
    413: "too-large",
    415: "unsupported-media-type",
    429: "rate-limited",
}


def problem_response(status: int, type_uri: str, title: str, detail: str) -> web.Response:
    body = {"type": type_uri, "title": title, "status": status, "detail": detail}
    response = web.Response(
        status=status,
        text=json.dumps(body, ensure_ascii=False),
        content_type=PROBLEM_JSON,
    )
    response[PROBLEM] = type_uri.rsplit(":", 1)[-1]
    return response


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except AxisError as exc:
        if exc.status >= 500:
            log.error("%s %s: %s", request.method, request.path, exc.detail)
        else:
            log.info("refused %s %s: %s %s", request.method, request.path, exc.problem, exc.detail)
        response = problem_response(exc.status, exc.type_uri, exc.title, exc.detail)
        if isinstance(exc, RateLimited):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        name = _HTTP_PROBLEMS.get(exc.status)
        type_uri = PROBLEM_PREFIX + name if name else "about:blank"
        return problem_response(exc.status, type_uri, exc.reason, exc.text or exc.reason)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(
            500, PROBLEM_PREFIX + "internal", "Internal error", "the hub failed; see its log"
        )


access = logging.getLogger("axis.access")


class LineBudget:
    """Lines about requests nobody authenticated (a stranger's 4xx): ``rate_per_s`` a second
    after a burst; beyond, they are counted, and the count goes on the next line written."""

    def __init__(self, rate_per_s: float = 20.0, burst: float = 100.0) -> None:
        self.rate_per_s, self.burst = rate_per_s, burst
        self.tokens, self.at = burst, time.monotonic()
        self.unlogged = 0

    def spend(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate_per_s)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        self.unlogged += 1
        return False

    def reset(self) -> None:
        self.tokens, self.at, self.unlogged = self.burst, time.monotonic(), 0


STRANGER_LINES = LineBudget()


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One line per request: who, what, how it ended, how long, and the package id."""
    started = time.perf_counter()
    response = await handler(request)
    agency = request.get(AGENCY)
    problem = response.get(PROBLEM)
    if agency is None and response.status >= 400 and not STRANGER_LINES.spend():
        return response  # a stranger's junk: counted, not written
    skipped, STRANGER_LINES.unlogged = STRANGER_LINES.unlogged, 0
    access.info(
        "%s %s %d"
        + (f" ({skipped} requests of strangers not logged before this)" if skipped else ""),
        request.method,
        request.path,
        response.status,
        extra={
            "method": request.method,
            "path": request.path,
            "status": response.status,
            "ms": round((time.perf_counter() - started) * 1000, 1),
            "agency": agency,
            "package_id": request.get(PACKAGE_ID) or request.match_info.get("id"),
            "problem": problem,
        },
    )
    return response
