"""Attacks through the push client (issue 16, class 2): a push endpoint is somebody else's
server. It may redirect the hub anywhere on its network, or answer with a compression bomb;
the hub follows nothing, reads a few KiB of an error answer at most and decompresses none,
keeps a short printable reason, and goes on serving the other agencies meanwhile."""

from __future__ import annotations

import contextlib
import gzip
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from axis.http.sockets import bind
from nodes.listen import listen_ssl_context
from nodes.profile import Profile
from tests.conftest import LiveHub
from tests.helpers import eventually, free_port, rss_mb

G22, H41, H58 = "000.00.00.G22", "000.00.00.H41", "000.00.00.H58"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def serve(app: web.Application, port: int, ssl_ctx: object = None) -> web.AppRunner:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.SockSite(runner, bind("127.0.0.1", port), ssl_context=ssl_ctx).start()  # type: ignore[arg-type]
    return runner


@contextlib.asynccontextmanager
async def hostile_endpoint(hub: LiveHub, handler: Handler) -> AsyncIterator[int]:
    port = free_port()
    profile = Profile.load(
        (await hub.register(H58, "UBND TP Hồ Chí Minh", endpoint=f"https://127.0.0.1:{port}/")).root
    )
    app = web.Application()
    app.router.add_post("/", handler)
    runner = await serve(app, port, listen_ssl_context(profile))
    try:
        yield port
    finally:
        await runner.cleanup()


async def state(hub: LiveHub, package_id: str) -> dict[str, object]:
    rows = await hub.client(G22).track(package_id)
    return next(r for r in rows if r["to"] == H58)


async def bystander_ms(hub: LiveHub) -> float:
    """What another agency's send costs meanwhile."""
    started = time.perf_counter()
    await hub.client(H41).send([G22], "Vẫn được phục vụ")
    return (time.perf_counter() - started) * 1000


@pytest.mark.parametrize("push_hub", [3], indirect=True)
async def test_a_redirect_is_not_followed(push_hub: LiveHub) -> None:
    hub = push_hub
    probed: list[str] = []

    async def inside(request: web.Request) -> web.Response:  # a service on the hub's network
        probed.append(request.path)
        return web.Response(text="internal secret")

    inner_port = free_port()
    inner = web.Application()
    inner.router.add_route("*", "/{tail:.*}", inside)
    inner_runner = await serve(inner, inner_port)

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(f"http://127.0.0.1:{inner_port}/admin")

    try:
        async with hostile_endpoint(hub, redirect):
            answer = (await hub.client(G22).send([H58], "Chuyển hướng")).answer

            async def failed() -> bool:
                return (await state(hub, answer["id"]))["state"] == "failed"

            await eventually(failed)
            row = await state(hub, answer["id"])
            assert probed == []  # the hub went nowhere
            assert "307" in str(row["last_error"]) and "secret" not in str(row["last_error"])
            assert await bystander_ms(hub) < 2000
    finally:
        await inner_runner.cleanup()


@pytest.mark.parametrize("push_hub", [3], indirect=True)
async def test_a_compression_bomb_in_an_error_answer_is_not_read(push_hub: LiveHub) -> None:
    hub = push_hub
    bomb = gzip.compress(b"\0" * (200 * 1024 * 1024), compresslevel=9)  # 200 MB → ~200 KB
    before = rss_mb()

    async def explode(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(
            status=500,
            body=bomb,
            headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"},
        )

    async with hostile_endpoint(hub, explode):
        answer = (await hub.client(G22).send([H58], "Bom nén")).answer

        async def failed() -> bool:
            return (await state(hub, answer["id"]))["state"] == "failed"

        await eventually(failed)
        row = await state(hub, answer["id"])
        assert str(row["last_error"]).startswith("the endpoint answered 500")
        assert len(str(row["last_error"])) < 200
        assert await bystander_ms(hub) < 2000
    assert rss_mb() - before < 100, f"{rss_mb() - before:.0f} MB more"
