"""The tamper-evident log: a hash chain of every state change, with signed checkpoints.

Theory of operation: entry ``n`` carries ``prev`` (the hash of entry ``n - 1``; entry 1 carries
:data:`GENESIS`) and ``hash`` = SHA-256 of a canonical JSON encoding of its own fields and
``prev``. Changing, removing or reordering any entry changes every hash after it, so the head of
the chain stands for the whole history. Every N entries or T seconds the hub signs a
:class:`Checkpoint` (the count, the head, the time) with its key; a verifier holding only the
hub's certificate can then tell a chain the hub wrote from one rewritten afterwards, even by
someone who recomputed all the hashes.

"received" entries also carry the SHA-256 of the package as it arrived, so a stored package
that was changed later no longer matches the log, and "agency-registered" entries the SHA-256
fingerprint of the agency's certificate (``cert_sha256``), so a certificate swapped in the
agencies table behind the hub's back shows (a reactivation names none: the registration's
stands).

Everything here is pure: the store appends entries in the same transaction as the change they
record, and ``axis log verify`` replays them through :func:`verify_chain`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from axis.core.lifecycle import DeliveryState
from axis.core.pki import PrivateKey

GENESIS = "0" * 64


class LogEvent(StrEnum):
    """What a log entry records (SPEC §7)."""

    RECEIVED = "received"
    DELIVERED = "delivered"
    ACKNOWLEDGED = "acknowledged"
    STATUS = "status"
    RECALLED = "recalled"
    FAILED = "failed"
    AGENCY_REGISTERED = "agency-registered"
    AGENCY_REVOKED = "agency-revoked"
    CODE_ADDED = "agency-code-added"  # organ_id: the agency; detail: the code it now holds
    CODE_CLOSED = "agency-code-closed"  # organ_id: its holder, if any; detail: code_closed()
    SYSTEM_ADDED = "system-added"  # detail: the system id (the national axis's face)
    SYSTEM_REVOKED = "system-revoked"  # detail: the system id

    @classmethod
    def of_state(cls, state: DeliveryState) -> LogEvent:
        """The entry a delivery's move into ``state`` writes (every state but queued, which
        no move enters)."""
        return cls(state.value)

    def state(self) -> DeliveryState | None:
        """The delivery state this entry records a move into, if it records one."""
        return DeliveryState(self.value) if self in _STATE_EVENTS else None


_STATE_EVENTS = frozenset(
    {LogEvent.DELIVERED, LogEvent.ACKNOWLEDGED, LogEvent.RECALLED, LogEvent.FAILED}
)


def received_detail(sender: str, recipients: Iterable[str], notes: str | None = None) -> str:
    """What a "received" entry says of its package, so that rerouting it later shows:
    ``from SENDER to R1,R2`` (recipients sorted), then ``; NOTES`` when the package was taken
    with notes (the national axis's face: unsigned, deviations from the standard)."""
    said = f"from {sender} to {','.join(sorted(recipients))}"
    return f"{said}; {notes}" if notes else said


_SUCCEEDED_BY = " succeeded by "


def code_closed(code: str, successor: str) -> str:
    """What an "agency-code-closed" entry says: ``CODE succeeded by SUCCESSOR``."""
    return f"{code}{_SUCCEEDED_BY}{successor}"


def closed_code(detail: str | None) -> tuple[str, str] | None:
    """(code, successor) from an "agency-code-closed" entry's detail; None if it says
    something else (a row edited behind the hub's back)."""
    code, sep, successor = (detail or "").partition(_SUCCEEDED_BY)
    return (code, successor) if sep and code and successor else None


@dataclass(frozen=True)
class LogEntry:
    """One link of the chain, as stored: ``at`` is the timestamp text and ``event`` a
    :class:`LogEvent`'s value, each hashed exactly as kept (text, because a row edited behind
    the hub's back may hold anything, which verification must report, not trip over)."""

    seq: int
    at: str
    event: str
    organ_id: str | None
    package_id: str | None
    detail: str | None
    sha256: str | None
    prev: str
    hash: str
    cert_sha256: str | None = None

    def fields(self) -> dict[str, object]:
        """What the hash covers (everything but the hash itself). ``cert_sha256`` only when
        the entry has one: entries from before it existed (schema version 3) hash as they
        always did."""
        return _covered(
            self.seq, self.at, self.event, self.organ_id, self.package_id, self.detail,
            self.sha256, self.prev, self.cert_sha256,
        )  # fmt: skip

    def certificate(self) -> str | None:
        """The fingerprint of the certificate an agency-registered entry names. Entries
        written before schema version 3 had it at the end of their detail (``NAME;
        certificate sha256 HEX``); the chain never rewrites them, so they are read so."""
        if self.cert_sha256 is not None:
            return self.cert_sha256
        if self.detail and _LEGACY_CERTIFICATE in self.detail:
            return self.detail.rsplit(_LEGACY_CERTIFICATE, 1)[1]
        return None


_LEGACY_CERTIFICATE = "; certificate sha256 "


def _covered(
    seq: int,
    at: str,
    event: str,
    organ_id: str | None,
    package_id: str | None,
    detail: str | None,
    sha256: str | None,
    prev: str,
    cert_sha256: str | None,
) -> dict[str, object]:
    """The fields an entry's hash covers (:meth:`LogEntry.fields`)."""
    fields: dict[str, object] = {
        "seq": seq,
        "at": at,
        "event": event,
        "organ_id": organ_id,
        "package_id": package_id,
        "detail": detail,
        "sha256": sha256,
        "prev": prev,
    }
    if cert_sha256 is not None:
        fields["cert_sha256"] = cert_sha256
    return fields


# One encoder for every hash: json.dumps with options builds a new one each call, a third of
# an entry's hashing (22 entries a document on the national mix).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(fields: dict[str, object]) -> str:
    """SHA-256 of the canonical JSON of ``fields`` (sorted keys, no spaces, UTF-8)."""
    return hashlib.sha256(_CANONICAL.encode(fields).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Draft:
    """An entry as a change writes it, before it takes its place in the chain: everything
    but ``seq``, ``prev`` and ``hash``, which only the chain's order gives."""

    at: str
    event: str
    organ_id: str | None = None
    package_id: str | None = None
    detail: str | None = None
    sha256: str | None = None
    cert_sha256: str | None = None


def linked(drafts: Iterable[Draft], head: tuple[int, str] | None) -> list[LogEntry]:
    """``drafts``, in order, as the next links of the chain whose last entry has ``head``'s
    seq and hash (None: the chain is empty). Each event is linked as written: a pending row
    edited behind the hub's back may hold anything, which verification reports."""
    seq, prev = head if head is not None else (0, GENESIS)
    entries = []
    for d in drafts:
        seq += 1
        entry = link(
            prev, seq, d.at, d.event, d.organ_id, d.package_id, d.detail, d.sha256, d.cert_sha256
        )
        entries.append(entry)
        prev = entry.hash
    return entries


def link(
    prev: str,
    seq: int,
    at: str,
    event: str,
    organ_id: str | None = None,
    package_id: str | None = None,
    detail: str | None = None,
    sha256: str | None = None,
    cert_sha256: str | None = None,
) -> LogEntry:
    """The next entry after one whose hash is ``prev``."""
    digest = entry_hash(
        _covered(seq, at, event, organ_id, package_id, detail, sha256, prev, cert_sha256)
    )
    return LogEntry(seq, at, event, organ_id, package_id, detail, sha256, prev, digest, cert_sha256)


@dataclass(frozen=True)
class ChainBreak:
    """Where verification failed and why."""

    seq: int
    reason: str


def verify_chain(
    entries: Iterable[LogEntry], prev: str = GENESIS, expected_seq: int = 1
) -> ChainBreak | None:
    """Replay ``entries`` in order; the first broken link, or None if all hold.

    ``prev`` and ``expected_seq`` let a caller verify a long chain page by page.
    """
    for entry in entries:
        if entry.seq != expected_seq:
            return ChainBreak(entry.seq, f"expected entry {expected_seq}, found {entry.seq}")
        if entry.prev != prev:
            return ChainBreak(entry.seq, "its prev is not the hash of the entry before it")
        try:
            intact = entry_hash(entry.fields()) == entry.hash
        except (TypeError, ValueError):  # a field edited to something JSON cannot hold
            intact = False
        if not intact:
            return ChainBreak(entry.seq, "its content does not match its hash")
        prev, expected_seq = entry.hash, expected_seq + 1
    return None


@dataclass(frozen=True)
class Checkpoint:
    """The hub's signed statement that its chain had ``seq`` entries ending in ``head``."""

    seq: int
    head: str
    at: str
    signature: bytes

    def payload(self) -> bytes:
        return checkpoint_payload(self.seq, self.head, self.at)


def checkpoint_payload(seq: int, head: str, at: str) -> bytes:
    return f"axis-log-checkpoint:1:{seq}:{head}:{at}".encode("ascii")


def sign_checkpoint(key: PrivateKey, seq: int, head: str, at: str) -> Checkpoint:
    """Sign the chain head with the hub's key (RSA PKCS#1 v1.5 or ECDSA, SHA-256)."""
    payload = checkpoint_payload(seq, head, at)
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(payload, padding.PKCS1v15(), hashes.SHA256())
    else:
        signature = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    return Checkpoint(seq, head, at, signature)


def checkpoint_valid(checkpoint: Checkpoint, hub_cert: x509.Certificate) -> bool:
    """Whether the hub's key signed this checkpoint."""
    public = hub_cert.public_key()
    try:
        payload = checkpoint.payload()
    except (UnicodeError, ValueError):
        return False  # a checkpoint row edited to hold what the hub never writes
    try:
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(checkpoint.signature, payload, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(checkpoint.signature, payload, ec.ECDSA(hashes.SHA256()))
        else:
            return False
    except InvalidSignature:
        return False
    return True
