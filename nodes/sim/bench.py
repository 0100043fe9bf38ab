"""``axis bench``: what a signed package costs at the floor, and what Axis does end to end.

Two measurements on the same machine, of the same number of documents (one ~20 KB
attachment each):

- **The floor**, in this one process, with lxml and cryptography directly: the work no
  implementation of the exchange can skip. Sign each package (exclusive C14N of the document,
  SHA-256, the SignedInfo canonicalised and signed with the agency's ECDSA P-256 key, as the
  simulated agencies sign), then verify it (parse, C14N, SHA-256, the signature checked), then
  store it (SQLite in WAL mode with ``synchronous=FULL``, committed in batches). No policy, no
  HTTP, no routing: a ceiling for what one core can do.
- **End to end**: simulated agencies exchange the documents through a real ``axis serve`` (a
  child process, over TLS on loopback), each document sent to one agency, fetched and
  acknowledged: sign, send, verify, store, route, fetch, ack. First as fast as the senders can
  go (the rate), then paced at half that rate (the send latency a hub that is not saturated
  gives, POST to 201).

The ratio e2e/floor says how close Axis is to what the packages themselves cost. Timings are
never asserted in tests; this command is what we watch.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import resource
import sqlite3
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from axis.core import formats, pki
from axis.core.formats import Attachment, Edoc, Organ, Trace
from axis.core.signing import DS_NS, EDXML_NS
from nodes.sim.runner import Simulation, percentiles
from nodes.sim.simulate import agencies_for, clients_of, own_hub
from nodes.sim.traffic import PointToPoint

# progress(stage, done, total): "sign", "verify", "store", "e2e", "paced"
BenchProgress = Callable[[str, int, int], None]

AGENCIES = 20  # enough senders and recipients that no one agency is the bottleneck
STORE_BATCH = 64  # packages per commit in the floor's store (the hub's group commit: ≤ 64)
FLOOR_CHUNK = 500  # packages signed, then verified, then stored, at a time
G22, H41 = "000.00.00.G22", "000.00.00.H41"
PACED_S = 30.0  # the paced run lasts about this long (or the whole N, if that is less)
CLIENT_RETRIES = 20

_DS = f"{{{DS_NS}}}"
_ED = f"{{{EDXML_NS}}}"
_EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
_ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
_SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
_ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"


@dataclass(frozen=True)
class Floor:
    """The single-process floor: seconds spent on each stage for ``packages`` packages."""

    packages: int
    sign_s: float
    verify_s: float
    store_s: float

    @property
    def seconds(self) -> float:
        return self.sign_s + self.verify_s + self.store_s

    @property
    def per_s(self) -> float:
        return self.packages / self.seconds

    def per_package_ms(self) -> dict[str, float]:
        n = self.packages
        return {
            "sign": round(self.sign_s / n * 1000, 3),
            "verify": round(self.verify_s / n * 1000, 3),
            "store": round(self.store_s / n * 1000, 3),
        }


@dataclass(frozen=True)
class Result:
    """One benchmark run."""

    documents: int
    floor: Floor
    e2e_per_s: float
    e2e_s: float
    paced_per_s: float
    paced_documents: int
    send_ms: dict[str, float | None]  # p50/p95/p99 of POST → 201 in the paced run
    saturated_send_ms: dict[str, float | None]  # the same at full rate
    hub_peak_rss_mb: float
    bench_peak_rss_mb: float
    lost: int
    # CPU per document at full rate, of the hub's processes and of the simulated agencies:
    # steadier than rates on a shared machine, and where the time goes.
    hub_cpu_ms: float = 0.0
    agencies_cpu_ms: float = 0.0
    hub: str = ""  # how the hub ran: its verifier, its database, its workers

    @property
    def ratio(self) -> float:
        return self.e2e_per_s / self.floor.per_s

    def as_json(self) -> dict[str, Any]:
        """The figures ``axis bench --json`` prints (SPEC §8, issue 7's keys)."""
        return {
            "floor_per_s": round(self.floor.per_s, 1),
            "e2e_per_s": round(self.e2e_per_s, 1),
            "ratio": round(self.ratio, 3),
            "p50_ms": self.send_ms["p50"],
            "p99_ms": self.send_ms["p99"],
            "peak_rss_mb": round(max(self.hub_peak_rss_mb, self.bench_peak_rss_mb), 1),
        }


# -- the floor ------------------------------------------------------------------------------


def _edoc(n: int, sender: str, recipient: str, attachment: bytes, day: date) -> Edoc:
    number = str(n)
    return Edoc(
        sender=Organ(sender, sender),
        recipients=(Organ(recipient, recipient),),
        document_id=formats.make_document_id(sender, day, number, "BENCH"),
        code_number=number,
        code_notation="BENCH",
        place="Hà Nội",
        promulgation_date=day,
        doc_type="1",
        type_detail="0",
        type_name="Công văn",
        subject=f"Đo hiệu năng {n}",
        content=None,
        priority=0,
        traces=(Trace(sender, datetime(day.year, day.month, day.day, 9)),),
        attachments=(Attachment("cid:1", f"phu-luc-{n}.pdf", "application/pdf", attachment),),
    )


def _c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=True)


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> Any:
    child = etree.SubElement(parent, _DS + tag, attrs)
    child.text = text
    return child


def floor_sign(root: etree._Element, key: ec.EllipticCurvePrivateKey, cert_der: bytes) -> bytes:
    """An enveloped XMLDSig signature over the whole document (``URI=""``, exclusive C14N,
    SHA-256, ECDSA), built with lxml and cryptography alone; the signed bytes."""
    digest = base64.b64encode(hashlib.sha256(_c14n(root)).digest()).decode("ascii")
    header = root.find(f"./{_ED}edXMLEnvelope/{_ED}edXMLHeader")
    assert header is not None
    signature = etree.SubElement(header, _DS + "Signature", nsmap={"ds": DS_NS})
    info = _sub(signature, "SignedInfo")
    _sub(info, "CanonicalizationMethod", Algorithm=_EXC_C14N)
    _sub(info, "SignatureMethod", Algorithm=_ECDSA_SHA256)
    reference = _sub(info, "Reference", URI="")
    transforms = _sub(reference, "Transforms")
    _sub(transforms, "Transform", Algorithm=_ENVELOPED)
    _sub(transforms, "Transform", Algorithm=_EXC_C14N)
    _sub(reference, "DigestMethod", Algorithm=_SHA256)
    _sub(reference, "DigestValue", digest)
    r, s = decode_dss_signature(key.sign(_c14n(info), ec.ECDSA(hashes.SHA256())))
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")  # XMLDSig's ECDSA value is r || s
    _sub(signature, "SignatureValue", base64.b64encode(raw).decode("ascii"))
    key_info = _sub(signature, "KeyInfo")
    _sub(_sub(key_info, "X509Data"), "X509Certificate", base64.b64encode(cert_der).decode())
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def floor_verify(data: bytes, public_key: ec.EllipticCurvePublicKey) -> etree._Element:
    """Parse, check the SignedInfo's signature, then the document's digest without the
    signature; the document. Raises ValueError or InvalidSignature if either fails."""
    # The floor's own parse: libxml2 with no entity, DTD or network, and no limit beyond
    # huge_tree (the hub's parser, axis.core.xmlsafe, counts elements and depth as it goes).
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True
    )
    root = etree.fromstring(data, parser=parser)
    signature = next(root.iter(_DS + "Signature"))
    info = signature.find(_DS + "SignedInfo")
    value = signature.findtext(_DS + "SignatureValue")
    expected = signature.findtext(f"{_DS}SignedInfo/{_DS}Reference/{_DS}DigestValue")
    if info is None or value is None or expected is None:
        raise ValueError("incomplete signature")
    raw = base64.b64decode(value)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public_key.verify(der, _c14n(info), ec.ECDSA(hashes.SHA256()))
    parent = signature.getparent()
    assert parent is not None
    parent.remove(signature)  # the enveloped-signature transform
    if base64.b64encode(hashlib.sha256(_c14n(root)).digest()).decode("ascii") != expected:
        raise ValueError("digest mismatch")
    return root


def floor_store(path: Path) -> sqlite3.Connection:
    """The floor's store: a fresh SQLite file in WAL mode with ``synchronous=FULL`` (a
    commit waits for the disk, as the hub's), holding the packages' bytes by id."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute(
            "CREATE TABLE packages (id TEXT PRIMARY KEY, sha256 TEXT NOT NULL,"
            " received_at TEXT NOT NULL, body BLOB NOT NULL)"
        )
    except BaseException:
        db.close()
        raise
    return db


def store_rows(db: sqlite3.Connection, first: int, bodies: Sequence[bytes]) -> None:
    """``bodies`` in one commit, numbered from ``first``, each with its sha256."""
    db.execute("BEGIN IMMEDIATE")
    db.executemany(
        "INSERT INTO packages VALUES (?, ?, ?, ?)",
        [
            (
                f"{first + n:032x}",
                hashlib.sha256(body).hexdigest(),
                datetime.now().isoformat(),
                body,
            )
            for n, body in enumerate(bodies)
        ],
    )
    db.execute("COMMIT")


def floor(
    documents: int, attachment_kb: float = 20, progress: BenchProgress | None = None
) -> Floor:
    """Sign, verify and store ``documents`` packages in this process; the time of each stage
    (building the unsigned trees is not counted: every implementation starts from one)."""
    report = progress or (lambda stage, done, total: None)
    key = pki.new_key("ec")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    ca_key, ca = pki.create_ca("Bench CA")
    _, cert = pki.issue_agency_cert(ca_key, ca, G22, "Bench", key=key)
    cert_der = cert.public_bytes(Encoding.DER)
    attachment = b"%PDF-1.4\n" + bytes(range(256)) * int(attachment_kb * 4)
    day = date(2020, 1, 6)

    public_key = key.public_key()
    sign_s = verify_s = store_s = 0.0
    with tempfile.TemporaryDirectory(prefix="axis-bench-") as work:
        db = floor_store(Path(work) / "floor.db")
        try:
            # A chunk at a time, each stage timed on its own: memory stays that of one chunk
            # however many documents (100,000 signed packages would be 3 GB).
            for first in range(0, documents, FLOOR_CHUNK):
                numbers = range(first, min(first + FLOOR_CHUNK, documents))
                trees = [formats.build_edoc(_edoc(n, G22, H41, attachment, day)) for n in numbers]
                started = time.perf_counter()
                signed = [floor_sign(tree, key, cert_der) for tree in trees]
                sign_s += time.perf_counter() - started
                report("sign", numbers.stop, documents)
                started = time.perf_counter()
                for body in signed:
                    floor_verify(body, public_key)
                verify_s += time.perf_counter() - started
                report("verify", numbers.stop, documents)
                started = time.perf_counter()
                for at in range(0, len(signed), STORE_BATCH):
                    store_rows(db, first + at, signed[at : at + STORE_BATCH])
                store_s += time.perf_counter() - started
                report("store", numbers.stop, documents)
        finally:
            db.close()
    return Floor(documents, sign_s, verify_s, store_s)


# -- end to end -----------------------------------------------------------------------------


def open_sockets(pid: int) -> int:
    """How many sockets ``pid`` holds open: its listeners and its connections."""
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed since it was listed
            count += os.readlink(fd).startswith("socket:")
    return count


def status_mb(pid: int, field: str = "VmHWM") -> float:
    """A memory figure of a process from /proc/PID/status, in MB: its peak resident set
    (VmHWM) by default, or its resident set now (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def hub_processes(pid: int) -> list[int]:
    """The hub's process, or with --workers its workers (the parent serves nothing)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    found = [int(c) for c in children.read_text().split()] if children.exists() else []
    return found or [pid]


def cpu_s(pids: list[int]) -> float:
    """CPU seconds (user + system) the processes have used so far."""
    return sum(_stat_cpu_s(Path(f"/proc/{pid}/stat")) for pid in pids)


def loop_cpu_s(pids: list[int]) -> list[float]:
    """CPU seconds each process's main thread has used so far: its event loop's, which runs
    every coroutine and all Python code but what the process hands to other threads (its
    SQLite threads, the default executor). One core is that thread's ceiling."""
    return [_stat_cpu_s(Path(f"/proc/{pid}/task/{pid}/stat")) for pid in pids]


def _stat_cpu_s(stat: Path) -> float:
    """utime + stime of a /proc stat file, in seconds."""
    # Fields after the command name (which may hold spaces) start at index 2 (state).
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def stage_progress(
    report: Callable[[str, int, int], None], stage: str, total: int, counted: str
) -> Callable[[str, int], None]:
    """A :class:`~nodes.sim.runner.Simulation` progress hook that reports the ``counted``
    events (``sent``, ``acknowledged``) of one run as ``stage``'s progress out of ``total``."""
    done = 0

    def on(what: str, n: int) -> None:
        nonlocal done
        if what == counted:
            done += n
            report(stage, done, total)

    return on


async def bench(
    documents: int,
    *,
    attachment_kb: float = 20,
    concurrency: int = 8,
    seed: int = 2020,
    verifier: str = "xmlsec",
    db: str | None = None,
    workers: int = 1,
    progress: BenchProgress | None = None,
    face: str = "native",
) -> Result:
    """The floor, then the exchange through a real hub at full rate and at half of it
    (``verifier``: the hub's signature engine, to compare them; ``db``: an empty PostgreSQL
    database for the hub instead of SQLite, served by ``workers`` processes; ``face``:
    ``vdxp`` puts every agency on the national axis's own API, as VNPT's SDK calls it)."""
    report = progress or (lambda stage, done, total: None)
    measured_floor = floor(documents, attachment_kb, report)
    chosen = agencies_for("seed-2020", AGENCIES)
    settings = {"verifier": verifier, **({"database": db} if db else {})}
    national = frozenset(a.organ_id for a in chosen) if face == "vdxp" else frozenset()
    async with (
        own_hub(chosen, push=False, workers=workers, national=national, settings=settings) as site,
        clients_of(site, chosen, national, retries=CLIENT_RETRIES) as clients,
    ):
        hub_settings = site.data.settings()  # what the hub runs with, for the record
        assert site.pid is not None
        hub_pids = hub_processes(site.pid)
        cpu_before = cpu_s(hub_pids), cpu_s([os.getpid()])
        full = Simulation(
            clients,
            PointToPoint(chosen, seed, attachment_kb),
            documents,
            concurrency,
            progress=stage_progress(report, "e2e", documents, "acknowledged"),
        )
        tally = await full.run()
        e2e_s = full.elapsed_s
        hub_cpu = (cpu_s(hub_pids) - cpu_before[0]) / max(1, tally.acknowledged) * 1000
        own_cpu = (cpu_s([os.getpid()]) - cpu_before[1]) / max(1, tally.acknowledged) * 1000
        rate = tally.acknowledged / e2e_s
        paced_n = max(1, min(documents, int(rate / 2 * PACED_S)))
        paced = Simulation(
            clients,
            PointToPoint(chosen, seed + 1, attachment_kb, first_number=documents + 1),
            paced_n,
            concurrency,
            progress=stage_progress(report, "paced", paced_n, "acknowledged"),
            pace_per_s=rate / 2,
        )
        paced_tally = await paced.run()
        hub_rss = max(status_mb(pid) for pid in hub_pids)
    database = "PostgreSQL" if hub_settings.hub.database else "SQLite"
    return Result(
        documents=documents,
        floor=measured_floor,
        e2e_per_s=rate,
        e2e_s=e2e_s,
        paced_per_s=paced_tally.acknowledged / paced.elapsed_s,
        paced_documents=paced_n,
        send_ms=percentiles(paced_tally.send_ms),
        saturated_send_ms=percentiles(tally.send_ms),
        hub_peak_rss_mb=hub_rss,
        bench_peak_rss_mb=own_peak_rss_mb(),
        lost=tally.lost + paced_tally.lost,
        hub_cpu_ms=hub_cpu,
        agencies_cpu_ms=own_cpu,
        hub=f"{hub_settings.signatures.verifier}, {database}, {workers} worker"
        + ("s" if workers > 1 else "")
        + (", national axis's API" if national else ""),
    )
