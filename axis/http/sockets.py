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

from aiohttp import StreamReader, web
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
    count since): a thousand idle strangers made both listeners unreachable before.

    It also knows which connections hold a request, for a stopping hub (:meth:`drain`): from
    the first byte of the request to its answer, not only while aiohttp runs its handler."""

    #: At a stop, how long after opening a connection that has sent nothing yet is waited for:
    #: its client connected to send a request, whose bytes may still be on their way (Go's
    #: http.Server.Shutdown waits 5 s for such connections too). Older ones count as idle.
    FIRST_REQUEST_S = 5.0

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
        self.connections: set[_Gated] = set()  # the admitted ones still open
        self.holding = 0  # how many of them hold a request (see _Gated.holding)
        self._settled: asyncio.Future[None] | None = None  # while drain waits for it
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

    def served(self, connection: _Gated | None) -> bool:
        """Count one answer on ``connection`` (a request's, :func:`_gated`); True once the
        connection has carried its share (see :func:`recycling`). The count lives on the
        connection's own protocol, so it goes with it; a connection already lost (its
        handler finished after the client left) is not counted.

        Each connection's share is drawn between half and one and a half times
        ``requests_per_connection`` (the same on average): the connections an agency opens
        together, all of them at a hub's start, would otherwise all close together and
        come back in one wave of TLS handshakes."""
        if connection is None or connection.peer is None or not connection.share:
            return False
        connection.answers += 1
        return connection.answers >= connection.share

    def share(self) -> int:
        """A new connection's share of answers (see :meth:`served`); 0: no limit."""
        n = self.requests_per_connection
        return random.randint((n + 1) // 2, n + n // 2) if n > 0 else 0

    def hold(self, connection: _Gated) -> None:
        connection.holding = True
        self.holding += 1

    def let_go(self, connection: _Gated) -> None:
        connection.holding = False
        self.holding -= 1
        if not self.holding and self._settled is not None and not self._settled.done():
            self._settled.set_result(None)

    async def drain(self, timeout_s: float) -> bool:
        """For a stopping hub, once its listener is closed: wait up to ``timeout_s`` until no
        connection holds a request, then close the others (as aiohttp's shutdown would: no
        request begins on them after). False if some still held one after ``timeout_s``.

        A request counts from its first byte: aiohttp stops reading from every connection at
        its shutdown, so a request whose bytes had arrived but whose handler had not begun
        would hang there, its body cut off. The wait and the closing are one step, with no
        await between them: a request that begins after the last check is never half-read.
        A connection still to send its first request is waited for up to FIRST_REQUEST_S
        after it opened."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            now = loop.time()
            for connection in [c for c in self.connections if c.fresh]:
                if now - connection.opened_at >= self.FIRST_REQUEST_S:
                    connection.fresh = False  # it sent nothing: idle
                    self.let_go(connection)
            if not self.holding or now >= deadline:
                break
            fresh = (c.opened_at + self.FIRST_REQUEST_S for c in self.connections if c.fresh)
            self._settled = loop.create_future()
            try:
                async with asyncio.timeout_at(min([deadline, *fresh])):
                    await self._settled
            except TimeoutError:
                pass
            finally:
                self._settled = None
        for connection in list(self.connections):
            if not connection.holding:
                connection.close()
        return not self.holding

    def wrap(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """``factory``'s protocols, admitted through the gate (after the TLS handshake, where
        there is one: a client certificate names its agency then)."""

        def gated() -> asyncio.Protocol:
            return _Gated(self, factory())

        return gated


class _Gated(asyncio.Protocol):
    """A protocol that asks the gate before the one it wraps sees the connection (aiohttp's
    handler has __slots__: it is wrapped, not patched).

    ``holding``: the connection holds a request, from its first byte (or, for one that came
    in the same read as the one before, from its handler's start) until :func:`recycling`
    has its answer; and a new connection until it sends something (``fresh``). The rest of
    a body its handler did not read (``unread``: an early refusal) is no new request."""

    def __init__(self, gate: ConnectionGate, inner: asyncio.Protocol) -> None:
        self.gate, self.inner = gate, inner
        self.peer: str | None = None
        self.answers = 0  # answered on this connection, and how many it may carry (drawn)
        self.share = gate.share()
        self.transport: asyncio.BaseTransport | None = None
        self.holding = self.fresh = False
        self.opened_at = 0.0
        self.unread: StreamReader | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = peer_of(transport)
        if not self.gate.admit(peer):
            abort = getattr(transport, "abort", transport.close)
            abort()  # at once: a refused connection holds no file a moment longer
            return
        self.peer = peer
        self.transport = transport
        self.gate.connections.add(self)
        self.fresh, self.opened_at = True, asyncio.get_running_loop().time()
        self.gate.hold(self)
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None:
            self.gate.release(self.peer)
            self.gate.connections.discard(self)
            if self.holding:
                self.gate.let_go(self)
            self.peer = None
            self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.peer is not None:
            self.fresh = False
            if not self.holding and (self.unread is None or self.unread.is_eof()):
                self.unread = None
                self.gate.hold(self)
            self.inner.data_received(data)

    def answering(self) -> None:
        """A request's handler begins (see ``holding``)."""
        if not self.holding:
            self.gate.hold(self)

    def answered(self, body: StreamReader) -> None:
        """Its handler has the answer (aiohttp sends it even once the connection closes)."""
        self.unread = None if body.is_eof() else body
        if self.holding:
            self.gate.let_go(self)

    def close(self) -> None:
        """Take no further request; close once the answer in hand is sent."""
        if isinstance(self.inner, web.RequestHandler):
            self.inner.close()
        elif self.transport is not None:
            self.transport.close()

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
    new one costs a TLS handshake per ``requests_per_connection`` requests.

    It also tells the gate when a request's handler begins and ends (:meth:`ConnectionGate.
    drain`): it comes first among a gated application's middlewares."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        connection = _gated(request.transport)
        if connection is not None:
            connection.answering()
        try:
            response = await handler(request)
        finally:
            if connection is not None:
                connection.answered(request.content)
        # A streamed answer has sent its headers: closing after it unannounced would race
        # the client's next request on the same connection. The next plain answer closes.
        if gate.served(connection) and not response.prepared:
            response.force_close()
            gate.recycled += 1
        return response

    return middleware


def _gated(transport: asyncio.BaseTransport | None) -> _Gated | None:
    """The gated connection a request came on (``request.transport``); None if it did not
    come through a gate, or the connection is already lost."""
    connection = transport.get_protocol() if transport is not None else None
    return connection if isinstance(connection, _Gated) and connection.peer is not None else None


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
