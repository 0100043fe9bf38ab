"""``axis-node listen``: an agency's push endpoint (SPEC §8).

HTTPS on 127.0.0.1 with the agency's own certificate. It accepts one client only, the hub
(its certificate, ``hub.pem`` in the profile, is pinned), takes ``POST /`` with a package and its
``Axis-Package-Id``, checks the package's signature against the CAs the hub trusts, writes it to
``OUT/ID.xml`` and answers 2xx only once the file is durably on disk. A push repeated after a
crash rewrites the same file with the same bytes: the package id is the idempotency key.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from aiohttp import web

from axis.core import pki
from axis.core.formats import Package
from axis.core.intake import IntakePolicy, key_info_signer, read_package
from axis.core.signing import VerificationPolicy, Verifier
from axis.core.xmlsafe import ParseLimits
from axis.errors import SchemaViolation, SenderMismatch, UnsupportedMediaType
from axis.http.body import XML_TYPES, read_body
from axis.http.problems import problem_middleware
from axis.http.sockets import bind
from nodes.client import NodeClient
from nodes.directory import Directory
from nodes.profile import Profile

PACKAGE_ID_RE = re.compile(r"^[0-9a-f]{32}$")
MAX_BODY = 64 * 1024 * 1024


@dataclass(frozen=True)
class Stored:
    """A package the endpoint took: where it went and what it was."""

    package_id: str
    path: Path
    package: Package


class PushReceiver:
    """Checks and stores pushed packages for one agency (no aiohttp in here)."""

    def __init__(
        self,
        profile: Profile,
        out: Path,
        allow_sha1: bool = False,
        directory: Callable[[], Awaitable[Directory]] | None = None,
    ) -> None:
        """``directory`` fetches the hub's directory, to tell a certificate that names
        another code of the sending agency from an impostor's."""
        self.profile = profile
        self.out = out
        trust = pki.TrustStore(tuple(pki.load_certs(profile.ca.read_bytes())))
        verifier = Verifier(VerificationPolicy(allow_sha1=allow_sha1), trust)
        self.policy = IntakePolicy(verifier, ParseLimits(max_bytes=MAX_BODY))
        self.fetch_directory = directory
        self.directory: Directory | None = None
        self._writing: set[asyncio.Task[Stored]] = set()  # stores running in threads

    def check(self, body: bytes) -> Package:
        """The package, if its signature is intact and its signer is the agency it names
        (the one intake path, with the certificate in KeyInfo, which one of the CAs the hub
        trusts must have issued; it may name another code of that agency, as the directory
        says).

        Raises:
            InputError: malformed, not edXML, bad signature, untrusted or mismatched signer.
        """
        same = self.directory.same_agency if self.directory is not None else None
        signer = partial(key_info_signer, same_agency=same)
        return read_package(body, self.policy, signer, datetime.now(UTC))

    async def take(self, package_id: str, body: bytes) -> Stored:
        """:meth:`store` off the event loop; when the signer's certificate names a code the
        directory held here does not give the sender, fetch the directory again, once."""
        try:
            return await self._in_thread(package_id, body)
        except SenderMismatch:
            if self.fetch_directory is None:
                raise
            self.directory = await self.fetch_directory()
            return await self._in_thread(package_id, body)

    async def _in_thread(self, package_id: str, body: bytes) -> Stored:
        """:meth:`store` in a thread, which a cancelled request does not stop: the write
        runs to its end, and :meth:`settle` waits for it."""
        task = asyncio.ensure_future(asyncio.to_thread(self.store, package_id, body))
        self._writing.add(task)
        task.add_done_callback(self._writing.discard)
        return await asyncio.shield(task)

    async def settle(self) -> None:
        """Wait for the writes still running (a stopped server cancels the requests that
        started them, not the threads): once this returns, nothing writes into ``out``."""
        if self._writing:
            await asyncio.gather(*self._writing, return_exceptions=True)

    def store(self, package_id: str, body: bytes) -> Stored:
        """Check, then write ``OUT/ID.xml`` durably (temp file, fsync, rename, fsync dir).

        The same package may be written twice at once: a push the hub gave up waiting for
        (its request cancelled, its write going on, see :meth:`_in_thread`) and the hub's
        next try. Each write has a temp file of its own (:func:`pki.write_atomically`); both
        renames leave the same bytes. With one name for both, the whole-window replay lost
        six such races (the second rename found no file, the push failed and was tried
        again)."""
        if not PACKAGE_ID_RE.match(package_id):
            raise SchemaViolation("Axis-Package-Id must be the hub's 32-hex-digit package id")
        package = self.check(body)
        self.out.mkdir(parents=True, exist_ok=True)
        final = self.out / f"{package_id}.xml"
        pki.write_atomically(final, body)
        directory = os.open(self.out, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return Stored(package_id, final, package)


RECEIVER = web.AppKey("receiver", PushReceiver)
Announce = Callable[[Stored], None]
ANNOUNCE: web.AppKey[Announce] = web.AppKey("announce")


async def receive(request: web.Request) -> web.Response:
    if request.content_type not in XML_TYPES:
        raise UnsupportedMediaType("push the package as application/xml")
    body = await read_body(request, MAX_BODY)
    package_id = request.headers.get("Axis-Package-Id", "")
    stored = await request.app[RECEIVER].take(package_id, body)
    request.app[ANNOUNCE](stored)
    return web.json_response({"id": stored.package_id, "stored": str(stored.path)})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def listen_app(
    receiver: PushReceiver, announce: Callable[[Stored], None] | None = None
) -> web.Application:
    app = web.Application(middlewares=[problem_middleware], client_max_size=MAX_BODY + 1)
    app[RECEIVER] = receiver
    app[ANNOUNCE] = announce or (lambda stored: None)
    app.router.add_post("/", receive)
    app.router.add_get("/healthz", healthz)
    return app


def listen_ssl_context(profile: Profile) -> ssl.SSLContext:
    """The agency's certificate as server; the hub's pinned certificate as the only client."""
    if not profile.hub_cert.exists():
        raise FileNotFoundError(f"the profile has no hub.pem ({profile.hub_cert})")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(profile.cert, profile.key)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=profile.hub_cert.read_text(encoding="ascii"))
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return ctx


@contextlib.asynccontextmanager
async def listening(
    profile: Profile,
    port: int,
    out: Path,
    allow_sha1: bool = False,
    announce: Callable[[Stored], None] | None = None,
    directory: Callable[[], Awaitable[Directory]] | None = None,
) -> AsyncIterator[int]:
    """Serve the push endpoint on 127.0.0.1:port (0: a free port, yielded); ``announce`` is
    told of every package once it is on disk; ``directory`` fetches the hub's directory."""
    receiver = PushReceiver(profile, out, allow_sha1, directory)
    runner = web.AppRunner(listen_app(receiver, announce), access_log=None)
    await runner.setup()
    try:
        sock = bind("127.0.0.1", port)
        await web.SockSite(runner, sock, ssl_context=listen_ssl_context(profile)).start()
        yield int(sock.getsockname()[1])
    finally:
        await runner.cleanup()
        # A push being written when the server stopped finishes first: whoever removes
        # ``out`` next (the simulator's throw-away data folder) does not pull it from under
        # a rename.
        await receiver.settle()


async def listen_forever(profile: Profile, port: int, out: Path, allow_sha1: bool) -> None:
    """``axis-node listen``: serve until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def announce(stored: Stored) -> None:
        print(
            f"received {stored.package.kind.value} {stored.package_id} from"
            f" {stored.package.sender.organ_id} -> {stored.path}",
            flush=True,
        )

    # The directory comes from the hub, over the agency's own connection to it.
    async with NodeClient(profile, retries=1) as node:
        fresh = partial(node.directory, refresh=True)
        async with listening(profile, port, out, allow_sha1, announce, fresh) as bound:
            print(
                f"{profile.organ_id} listening on https://127.0.0.1:{bound}/, writing to {out}",
                flush=True,
            )
            await stop.wait()
