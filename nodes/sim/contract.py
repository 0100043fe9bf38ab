"""What the contract costs a document of the national mix at the least, measured in this
process, beside what the run's own agencies add to it.

SPEC's contract for a package: its sender signs it; the hub reads it (the hardened parse, the
edXML schema, the signature, the typed read), stores it and answers with a receipt it signs;
each exchange is a kept-alive HTTPS request with client certificates. :func:`contract_costs`
times each of those steps with the very code the hub and the simulated agencies run, on two
of the run's own agencies, in this one process, before the run starts, and
:meth:`ContractCosts.required` weighs them by what the run counted: a floor under a
document's CPU that no request path, store or simulator can go below while keeping the
contract. It errs low: only the package's own row is stored (not its deliveries, log entries
and counters), the HTTPS handler is bare, and every edoc carries one attachment of the run's
median size (the mix draws larger ones too).

The contract asks nothing of a recipient that pulls, but the run's agencies check more, as
real software does: each sender checks its receipt, and each document is verified once when
its recipients read it (they share this process and its trust). :meth:`ContractCosts.checked`
adds those two steps.

It answers a question the end-to-end figures cannot: how much of a document's CPU is the
contract's own, and what the whole window would take on this machine's cores if nothing else
ran at all.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, TCPConnector, web

from axis.core import intake, pki
from axis.core.edxml_model import Attachment
from axis.core.formats import Edoc
from axis.core.receipt import Receipt, ReceiptSigner
from axis.host.datadir import DataDir
from axis.usecases.hub import intake_policy
from nodes.client import NodeClient, tls_context
from nodes.sim.bench import STORE_BATCH, floor_store, store_rows

EDOC_ROUNDS = 40  # each edoc step this many times (about 1.5 ms each)
STATUS_ROUNDS = 150  # each status and receipt step (0.2-0.7 ms each)
REQUESTS = 600  # HTTPS requests, STREAMS at a time on as many kept-alive connections
STREAMS = 8


@dataclass(frozen=True)
class ContractCosts:
    """CPU milliseconds of each step of the contract, measured in this process."""

    edoc_signed: float  # the sender builds a document (with its attachment) and signs it
    edoc_taken: float  # the hub reads it: hardened parse, schema, signature, typed read
    edoc_read: float  # a recipient reads it as the run's agencies do, signature and all
    status_signed: float  # a recipient builds and signs a status
    status_taken: float  # the hub reads the status
    receipt_signed: float  # the hub signs a package's receipt
    receipt_checked: float  # its sender checks it
    stored: float  # one package's row in SQLite (WAL, synchronous=FULL, 64 a commit), mean
    request: float  # one kept-alive HTTPS request, both ends (aiohttp, TLS with client certs)

    def required(self, edocs: float, statuses: float, requests: float) -> float:
        """The floor of one document's CPU, in ms, as the contract requires it, for a run that
        counted, a document: ``edocs`` edocs signed (the document, and its updates),
        ``statuses`` statuses and ``requests`` requests."""
        return (
            edocs * (self.edoc_signed + self.edoc_taken)
            + statuses * (self.status_signed + self.status_taken)
            + (edocs + statuses) * (self.receipt_signed + self.stored)
            + requests * self.request
        )

    def checked(self, edocs: float, statuses: float, requests: float) -> float:
        """:meth:`required`, with the checks the run's agencies add: every receipt checked by
        its sender, and every edoc verified once by its recipients."""
        return (
            self.required(edocs, statuses, requests)
            + (edocs + statuses) * self.receipt_checked
            + edocs * self.edoc_read
        )

    def as_json(self) -> dict[str, float]:
        return {name: round(ms, 3) for name, ms in asdict(self).items()}


def _cpu_ms(step: Callable[[], Any], rounds: int) -> tuple[float, Any]:
    """The CPU (this process's) of one ``step``, in ms, over ``rounds`` after one to warm;
    and what the last one gave."""
    result = step()
    started = time.process_time()
    for _ in range(rounds):
        result = step()
    return (time.process_time() - started) / rounds * 1000, result


async def contract_costs(
    sender: NodeClient, recipient: NodeClient, data: DataDir, attachment_kb: float
) -> ContractCosts:
    """Time each step of the contract with ``sender`` and ``recipient``'s software (two of
    the run's agencies, in the dialects they write) and the hub's reading, signing and trust
    as ``data`` configures them. Run it while nothing else runs in this process."""
    settings = data.settings()
    policy = intake_policy(data.verifier(settings), settings)  # the hub's own
    receipts = ReceiptSigner(data.hub_key.read_bytes(), data.hub_cert.read_bytes())
    from_sender = _registered(sender)
    from_recipient = _registered(recipient)
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * int(attachment_kb * 4)  # as the floor's
    attachment = Attachment("cid:1", "phu-luc.pdf", "application/pdf", pdf)
    numbers = iter(range(1, 1_000_000))

    def build_edoc() -> bytes:
        return sender.build_edoc(
            [recipient.profile.organ()],
            "Về việc đo chi phí của hợp đồng",
            attachments=[attachment],
            number=next(numbers),
        )

    edoc_signed, edoc = _cpu_ms(build_edoc, EDOC_ROUNDS)
    edoc_taken, _ = _cpu_ms(lambda: intake.read_package(edoc, policy, from_sender), EDOC_ROUNDS)
    edoc_read, read = _cpu_ms(lambda: recipient.read(edoc), EDOC_ROUNDS)
    assert isinstance(read, Edoc)
    status_signed, status = _cpu_ms(lambda: recipient.build_status(read, "01"), STATUS_ROUNDS)
    status_taken, _ = _cpu_ms(
        lambda: intake.read_package(status, policy, from_recipient), STATUS_ROUNDS
    )
    sha256 = hashlib.sha256(edoc).hexdigest()
    receipt = Receipt(
        "0" * 32,
        sha256,
        sender.profile.organ_id,
        (recipient.profile.organ_id,),
        datetime.now(UTC),
        settings.hub.organ_id,
    )
    receipt_signed, signed = _cpu_ms(lambda: receipts.sign(receipt), STATUS_ROUNDS)
    answer = {"id": receipt.package_id, "sha256": sha256, "receipt": signed}
    receipt_checked, _ = _cpu_ms(lambda: sender.check_receipt(answer, edoc), STATUS_ROUNDS)
    return ContractCosts(
        edoc_signed=edoc_signed,
        edoc_taken=edoc_taken,
        edoc_read=edoc_read,
        status_signed=status_signed,
        status_taken=status_taken,
        receipt_signed=receipt_signed,
        receipt_checked=receipt_checked,
        stored=_stored_ms([edoc, status]),
        request=await _request_ms(sender, data, status, signed),
    )


def _registered(client: NodeClient) -> intake.SignerFor:
    """The hub's rule for a package from ``client``'s agency: its registered certificate."""
    cert = pki.load_cert(client.profile.cert.read_bytes())
    return intake.registered_signer(client.profile.organ_id, cert)


def _stored_ms(bodies: list[bytes]) -> float:
    """The mean CPU of one row of each of ``bodies`` in the floor's store
    (:func:`nodes.sim.bench.floor_store`: WAL, synchronous=FULL), 64 rows a commit."""
    rows = [body for _ in range(STORE_BATCH * 2 // len(bodies)) for body in bodies]
    with tempfile.TemporaryDirectory(prefix="axis-contract-") as work:
        db = floor_store(Path(work) / "contract.db")
        try:
            started = time.process_time()
            for first in range(0, len(rows), STORE_BATCH):
                store_rows(db, first, rows[first : first + STORE_BATCH])
            return (time.process_time() - started) / len(rows) * 1000
        finally:
            db.close()


async def _request_ms(client: NodeClient, data: DataDir, body: bytes, answer: str) -> float:
    """The CPU of one kept-alive HTTPS request, both ends in this process: ``client``'s
    agency POSTs ``body`` (a status) to a bare handler on 127.0.0.1 behind the hub's own TLS
    (:meth:`axis.host.datadir.DataDir.server_tls`), which answers as the hub does (201, JSON with
    the receipt ``answer``)."""
    reply = {"id": "0" * 32, "kind": "status", "receipt": answer}

    async def take(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response(reply, status=201)

    app = web.Application()
    app.router.add_post("/v1/packages", take)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=data.server_tls())
        await site.start()
        port = runner.addresses[0][1]
        url = f"https://127.0.0.1:{port}/v1/packages"
        connector = TCPConnector(ssl=tls_context(client.profile), limit=STREAMS)
        async with ClientSession(connector=connector) as session:

            async def one() -> None:
                headers = {"Content-Type": "application/xml"}
                async with session.post(url, data=body, headers=headers) as response:
                    await response.json()

            for _ in range(4):  # the connections open (their handshakes not counted)
                await asyncio.gather(*(one() for _ in range(STREAMS)))
            started = time.process_time()
            for _ in range(REQUESTS // STREAMS):
                await asyncio.gather(*(one() for _ in range(STREAMS)))
            return (time.process_time() - started) / (REQUESTS // STREAMS * STREAMS) * 1000
    finally:
        await runner.cleanup()
