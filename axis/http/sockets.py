"""Listening sockets for the hub's listeners and an agency's push endpoint."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import random
import resource
import socket
import ssl
import time
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

log = logging.getLogger("axis.serve")


def bind(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A listening socket; port 0 picks a free one (tests read it back). With
    ``reuse_port`` several processes listen on the same port (SO_REUSEPORT) and the kernel
    spreads new connections among them: the workers of ``axis serve --workers N``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(512)
    sock.setblocking(False)
    return sock


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now, for a server that must know its port before it starts
    (an agency's push endpoint is registered before it listens)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ConnectionGate:
    """Bounds the connections a listener holds: ``total`` in all, ``per_peer`` for one peer
    (an agency by its client certificate, else an address). A connection beyond either is
    closed as it opens, and that is logged (at most once a minute per listener, with the
    count since): a thousand idle strangers made both listeners unreachable before."""

    def __init__(
        self, name: str, total: int, per_peer: int, requests_per_connection: int = 0
    ) -> None:
        self.name, self.total, self.per_peer = name, total, per_peer
        self.requests_per_connection = requests_per_connection
        self.open = 0
        self.by_peer: dict[str, int] = {}
        self.admitted = 0  # connections let in since the start (each a TLS handshake)
        self.refused = 0
        self.recycled = 0  # connections closed because they had carried their share
        self._logged_at = -math.inf

    def admit(self, peer: str) -> bool:
        if self.open >= self.total or self.by_peer.get(peer, 0) >= self.per_peer:
            self.refused += 1
            now = time.monotonic()
            if now - self._logged_at >= 60:
                self._logged_at = now
                why = "in all" if self.open >= self.total else f"from {peer[:80]}"
                log.warning(
                    "%s: refusing connections (%d open, too many %s; %d refused so far)",
                    self.name, self.open, why, self.refused,
                )  # fmt: skip
            return False
        self.open += 1
        self.admitted += 1
        self.by_peer[peer] = self.by_peer.get(peer, 0) + 1
        return True

    def release(self, peer: str) -> None:
        self.open -= 1
        left = self.by_peer.get(peer, 1) - 1
        if left > 0:
            self.by_peer[peer] = left
        else:
            self.by_peer.pop(peer, None)

    def served(self, transport: asyncio.BaseTransport | None) -> bool:
        """Count one answer on the connection of ``transport`` (``request.transport``); True
        once the connection has carried its share (see :func:`recycling`). The count lives on
        the connection's own protocol, so it goes with it; a connection already lost (its
        handler finished after the client left) is not counted.

        Each connection's share is drawn between half and one and a half times
        ``requests_per_connection`` (the same on average): the connections an agency opens
        together, all of them at a hub's start, would otherwise all close together and
        come back in one wave of TLS handshakes."""
        connection = transport.get_protocol() if transport is not None else None
        if not isinstance(connection, _Gated) or connection.peer is None or not connection.share:
            return False
        connection.answers += 1
        return connection.answers >= connection.share

    def share(self) -> int:
        """A new connection's share of answers (see :meth:`served`); 0: no limit."""
        n = self.requests_per_connection
        return random.randint((n + 1) // 2, n + n // 2) if n > 0 else 0

    def wrap(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """``factory``'s protocols, admitted through the gate (after the TLS handshake, where
        there is one: a client certificate names its agency then)."""

        def gated() -> asyncio.Protocol:
            return _Gated(self, factory())

        return gated


class _Gated(asyncio.Protocol):
    """A protocol that asks the gate before the one it wraps sees the connection (aiohttp's
    handler has __slots__: it is wrapped, not patched)."""

    def __init__(self, gate: ConnectionGate, inner: asyncio.Protocol) -> None:
        self.gate, self.inner = gate, inner
        self.peer: str | None = None
        self.answers = 0  # answered on this connection, and how many it may carry (drawn)
        self.share = gate.share()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = peer_of(transport)
        if not self.gate.admit(peer):
            abort = getattr(transport, "abort", transport.close)
            abort()  # at once: a refused connection holds no file a moment longer
            return
        self.peer = peer
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None:
            self.gate.release(self.peer)
            self.peer = None
            self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.peer is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.peer is not None else None

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


def recycling(gate: ConnectionGate) -> Middleware:
    """Close a connection (``Connection: close`` on its answer) once it has carried the gate's
    ``requests_per_connection``: the client opens a new one for its next request.

    What a TLS connection holds grows to the largest burst it ever carried (uvloop's read
    buffer, OpenSSL's incoming memory BIO; neither shrinks), so a hub whose agencies keep their
    connections for days holds, for each, the biggest upload it ever read: measured, its RSS
    crept up with the documents replayed long after the connections were all open. Closing a
    connection gives that back, as nginx's ``keepalive_requests`` does for the same reason; a
    new one costs a TLS handshake per ``requests_per_connection`` requests."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        # A streamed answer has sent its headers: closing after it unannounced would race
        # the client's next request on the same connection. The next plain answer closes.
        if gate.served(request.transport) and not response.prepared:
            response.force_close()
            gate.recycled += 1
        return response

    return middleware


def peer_of(transport: asyncio.BaseTransport) -> str:
    """Who is at the other end: the agency's certificate (its SHA-256) when TLS carried one,
    else the address."""
    der = None
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is not None:
        der = ssl_object.getpeercert(binary_form=True)
    if der:
        return "cert:" + hashlib.sha256(der).hexdigest()
    address = transport.get_extra_info("peername")
    return f"addr:{address[0] if isinstance(address, tuple) else address}"


class GatedSite(web.SockSite):
    """:class:`aiohttp.web.SockSite` whose connections pass a :class:`ConnectionGate`
    (``start`` as aiohttp's own, with the server's protocol factory wrapped)."""

    def __init__(self, runner: web.BaseRunner, sock: socket.socket, gate: ConnectionGate,
                 ssl_context: ssl.SSLContext | None = None) -> None:  # fmt: skip
        super().__init__(runner, sock, ssl_context=ssl_context)
        self.gate = gate

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self.gate.wrap(server), sock=self._sock, ssl=self._ssl_context, backlog=self._backlog
        )


def raise_file_limit() -> tuple[int, int]:
    """Raise the soft limit of open files to the hard one (each connection is a file): the
    default 1024 is what a thousand idle connections exhausted. Returns (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft, hard
