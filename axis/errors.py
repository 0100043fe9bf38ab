"""One exception tree for everything Axis refuses.

::

    AxisError                      500 (a bug or an outage we did not classify)
     ├─ InputError                 4xx: the caller sent something we will not take
     │   ├─ MalformedXml           400 malformed-xml
     │   ├─ SchemaViolation        422 schema-violation
     │   ├─ InvalidSignature       422 invalid-signature
     │   ├─ UntrustedCertificate   403 untrusted-certificate
     │   ├─ SenderMismatch         403 sender-mismatch
     │   ├─ UnknownRecipient       422 unknown-recipient
     │   ├─ UnknownDocument        404 unknown-document
     │   ├─ DuplicateConflict      409 duplicate-conflict
     │   ├─ NotAllowed             403 not-allowed
     │   ├─ TooLarge               413 too-large
     │   ├─ UnsupportedMediaType   415 unsupported-media-type
     │   └─ RateLimited            429 rate-limited
     └─ Unavailable                503 unavailable

Each class carries its problem ``type`` name (SPEC §5) and HTTP status, so the web layer turns
any of them into ``application/problem+json`` in one place. Lower-level errors (lxml,
cryptography, signxml, database drivers) are translated where they enter, with ``raise X from
exc``, so nothing above the boundary sees a foreign exception.
"""

from __future__ import annotations

from typing import ClassVar

PROBLEM_PREFIX = "urn:axis:problem:"


class AxisError(Exception):
    """Base of every error Axis raises on purpose."""

    problem: ClassVar[str] = "internal"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title

    @property
    def type_uri(self) -> str:
        """The RFC 9457 ``type`` member, e.g. ``urn:axis:problem:malformed-xml``."""
        return PROBLEM_PREFIX + self.problem

    def to_problem(self) -> dict[str, object]:
        """The problem+json body for this error."""
        return {
            "type": self.type_uri,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }


class InputError(AxisError):
    """The request was refused because of what the caller sent (always a 4xx)."""

    status = 400
    title = "Bad input"


class MalformedXml(InputError):
    problem = "malformed-xml"
    status = 400
    title = "The body is not well-formed, safe XML"


class SchemaViolation(InputError):
    problem = "schema-violation"
    status = 422
    title = "The package does not follow the edXML schema"


class InvalidSignature(InputError):
    problem = "invalid-signature"
    status = 422
    title = "The package signature is not valid"


class UntrustedCertificate(InputError):
    problem = "untrusted-certificate"
    status = 403
    title = "The certificate is not trusted"


class SenderMismatch(InputError):
    problem = "sender-mismatch"
    status = 403
    title = "The sender is not the authenticated agency"


class UnknownRecipient(InputError):
    problem = "unknown-recipient"
    status = 422
    title = "A recipient is not a registered, active agency"


class UnknownDocument(InputError):
    problem = "unknown-document"
    status = 404
    title = "No such package"


class DuplicateConflict(InputError):
    problem = "duplicate-conflict"
    status = 409
    title = "This DocumentId was already sent with other content"


class NotAllowed(InputError):
    problem = "not-allowed"
    status = 403
    title = "Not allowed"


class TooLarge(InputError):
    problem = "too-large"
    status = 413
    title = "The request is too large"


class UnsupportedMediaType(InputError):
    problem = "unsupported-media-type"
    status = 415
    title = "Unsupported media type"


class RateLimited(InputError):
    problem = "rate-limited"
    status = 429
    title = "Too many requests"

    def __init__(self, detail: str = "", retry_after_s: float = 1.0) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s  # sent as Retry-After (whole seconds, at least 1)


class Unavailable(AxisError):
    problem = "unavailable"
    status = 503
    title = "The hub cannot take this request now"


ALL_PROBLEMS: tuple[type[AxisError], ...] = (
    MalformedXml,
    SchemaViolation,
    InvalidSignature,
    UntrustedCertificate,
    SenderMismatch,
    UnknownRecipient,
    UnknownDocument,
    DuplicateConflict,
    NotAllowed,
    TooLarge,
    UnsupportedMediaType,
    RateLimited,
    Unavailable,
)
