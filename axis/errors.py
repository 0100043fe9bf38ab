"""One exception tree for everything Axis refuses or cannot do.

::

    AxisError                      500 internal (a bug or an outage we did not classify)
     ├─ InputError                 4xx: the caller sent something we will not take
     │   ├─ MalformedXml           400 malformed-xml
     │   ├─ SchemaViolation        422 schema-violation
     │   │   └─ Nonconforming      422 schema-violation: a strict face refuses a field habit
     │   ├─ InvalidSignature       422 invalid-signature (also: a receipt that does not verify)
     │   ├─ UntrustedCertificate   403 untrusted-certificate
     │   ├─ SenderMismatch         403 sender-mismatch
     │   ├─ UnknownRecipient       422 unknown-recipient
     │   ├─ UnknownDocument        404 unknown-document
     │   ├─ DuplicateConflict      409 duplicate-conflict
     │   ├─ NotAllowed             403 not-allowed
     │   ├─ TooLarge               413 too-large
     │   ├─ UnsupportedMediaType   415 unsupported-media-type
     │   └─ RateLimited            429 rate-limited
     ├─ Unavailable                503 unavailable: the hub, or its database, cannot serve now
     │   ├─ Unreachable            the other side could not be reached (a client's view)
     │   └─ WorkersFailed          axis serve --workers: the workers die as they start
     ├─ UnexpectedAnswer           the other side answered with a problem this Axis does not know
     ├─ InvalidTransition          a move the lifecycle table does not have (axis.core.lifecycle;
     │                             the hub answers not-allowed, so one escaping is a bug)
     ├─ ConfigError                axis.toml, or a setting given another way, is not valid
     ├─ SetupError                 what a command needs on disk is missing or wrong
     │   ├─ DataDirError           the data folder (axis init's)
     │   └─ ProfileError           an agency's node profile
     └─ PushFailed                 a push to an agency's endpoint did not get a 2xx

Each class carries its problem ``type`` name (SPEC §5) and HTTP status, so the web layer turns
any of them into ``application/problem+json`` in one place, and the node client turns any
problem+json answer back into its class (:func:`from_problem`): a refusal is the same object
on both sides of the wire, with the answer kept on it (:attr:`AxisError.answer`). Lower-level
errors (lxml, cryptography, signxml, database drivers, aiohttp) are translated where they
enter, with ``raise X from exc``, so nothing above the boundary sees a foreign exception.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

PROBLEM_PREFIX = "urn:axis:problem:"


class AxisError(Exception):
    """Base of every error Axis raises on purpose.

    ``status`` is the class's HTTP status, or what a remote party answered; ``answer`` the
    problem+json document it answered with (None for an error raised here).
    """

    problem: ClassVar[str] = "internal"
    status: int = 500
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str = "",
        *,
        status: int | None = None,
        answer: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        if status is not None:
            self.status = status
        self.answer: dict[str, Any] | None = dict(answer) if answer is not None else None

    @property
    def type_uri(self) -> str:
        """The RFC 9457 ``type`` member, e.g. ``urn:axis:problem:malformed-xml``."""
        if self.answer is not None and isinstance(self.answer.get("type"), str):
            return str(self.answer["type"])
        return PROBLEM_PREFIX + self.problem

    @property
    def problem_name(self) -> str:
        """The last part of the type: ``malformed-xml``."""
        return self.type_uri.rsplit(":", 1)[-1]

    def headline(self) -> str:
        """The error in one line: ``422 unknown-recipient: recipient … is not registered``."""
        return f"{self.status} {self.problem_name}: {self.detail}"

    @property
    def remote(self) -> bool:
        """Whether another party (the hub, for a client) answered with this error."""
        return self.answer is not None


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


class Nonconforming(SchemaViolation):
    """What QCVN 102:2016 refuses and the real axis delivers, refused by a face set to be
    strict (``[vdxp] strict``): a schema-violation on the wire, told apart by that face."""


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

    def __init__(
        self,
        detail: str = "",
        retry_after_s: float = 1.0,
        *,
        status: int | None = None,
        answer: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail, status=status, answer=answer)
        self.retry_after_s = retry_after_s

    @property
    def retry_after(self) -> int:
        """The wait as Retry-After says it: whole seconds, at least one."""
        return retry_after_seconds(self.retry_after_s)


def retry_after_seconds(wait_s: float) -> int:
    """A wait in seconds as HTTP's Retry-After gives it: whole seconds, rounded up, at least
    one (the header has no fractions, and 0 would invite an immediate retry)."""
    return max(1, math.ceil(wait_s))


class Unavailable(AxisError):
    problem = "unavailable"
    status = 503
    title = "The hub cannot take this request now"


class Unreachable(Unavailable):
    problem = "unreachable"
    title = "The other side could not be reached"


class WorkersFailed(Unavailable):
    problem = "workers-failed"
    title = "The hub's workers keep dying as they start"


class UnexpectedAnswer(AxisError):
    problem = "unexpected-answer"
    status = 502
    title = "The other side answered with a problem this Axis does not know"


class ConfigError(AxisError):
    problem = "configuration"
    title = "A settings file is not valid"


class SetupError(AxisError):
    problem = "set-up"
    title = "Something a command needs on disk is missing or wrong"


class DataDirError(SetupError):
    title = "The data folder is missing, incomplete, or cannot do that"


class ProfileError(SetupError):
    title = "The node profile is missing a file or holds a bad one"


class PushFailed(AxisError):
    problem = "push-failed"
    status = 502
    title = "The push endpoint did not take the package"


#: The errors an HTTP answer can carry, by their problem type (SPEC §5).
PROBLEMS: Mapping[str, type[AxisError]] = {
    PROBLEM_PREFIX + cls.problem: cls
    for cls in (
        MalformedXml, SchemaViolation, InvalidSignature, UntrustedCertificate, SenderMismatch,
        UnknownRecipient, UnknownDocument, DuplicateConflict, NotAllowed, TooLarge,
        UnsupportedMediaType, RateLimited, Unavailable,
    )
}  # fmt: skip


def from_problem(
    status: int, answer: Mapping[str, Any], retry_after_s: float | None = None
) -> AxisError:
    """The error a problem+json ``answer`` (with HTTP ``status``) stands for: an instance of
    the class of its ``type``, or :class:`UnexpectedAnswer` for a type this Axis does not know
    or one whose status is not its own. ``retry_after_s``: a 429's Retry-After."""
    kind = PROBLEMS.get(str(answer.get("type", "")))
    detail = str(answer.get("detail") or answer.get("title") or f"HTTP {status}")
    if kind is None or kind.status != status:
        return UnexpectedAnswer(detail, status=status, answer=answer)
    if kind is RateLimited:
        return RateLimited(detail, retry_after_s or 1.0, status=status, answer=answer)
    return kind(detail, status=status, answer=answer)
