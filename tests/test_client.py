"""The node client's own behaviour, with no hub: how it reads answers, retries and raises.
Its requests go to a MockTransport (nodes/transport.py); the tests that talk to a real hub
over TLS are test_hub_api.py and the others."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from axis import errors
from axis.core import formats, pki
from axis.core.formats import Organ
from axis.core.receipt import Receipt, ReceiptSigner
from axis.core.signing import signing_cert_of
from axis.errors import PROBLEM_PREFIX, AxisError, Unreachable
from axis.host import datadir
from axis.host.datadir import DataDir
from nodes.client import NodeClient
from nodes.directory import Directory
from nodes.profile import Profile
from nodes.transport import MockTransport, Request, Response

G22, H41 = "000.00.00.G22", "000.00.00.H41"
DIRECTORY = Directory.from_json(
    [{"organ_id": H41, "name": "UBND tỉnh Nghệ An", "active": True, "codes": [H41, "H41"]}]
)


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Profile:
    data = DataDir(tmp_path_factory.mktemp("client") / "data")
    datadir.init(data)
    datadir.write_profile(data, G22, "Văn phòng Chính phủ", "https://hub.invalid", key_kind="ec")
    return Profile.load(data.profile(G22))


def accepted(profile: Profile, body: bytes, status: int = 201) -> Response:
    """What the hub answers a package: its id, sha256 and a receipt its key signed."""
    data = DataDir(profile.root.parent.parent)  # the profile is DATA/agencies/ORGAN_ID
    sha256 = hashlib.sha256(body).hexdigest()
    signer = ReceiptSigner(data.hub_key.read_bytes(), data.hub_cert.read_bytes())
    made = Receipt("0" * 32, sha256, profile.organ_id, (H41,), datetime.now(UTC), "000.00.00.A00")
    answer = {"id": "0" * 32, "sha256": sha256, "receipt": signer.sign(made)}
    return Response(status, json.dumps(answer).encode())


def problem(status: int, name: str, detail: str = "why") -> Response:
    body = {"type": PROBLEM_PREFIX + name, "title": "t", "status": status, "detail": detail}
    return Response(status, json.dumps(body).encode(), "application/problem+json")


@pytest.mark.parametrize("kind", list(errors.PROBLEMS.values()), ids=lambda k: k.problem)
async def test_each_problem_type_is_raised_as_its_own_class(
    profile: Profile, kind: type[AxisError]
) -> None:
    answer = problem(kind.status, kind.problem, "as the hub said it")
    node = NodeClient(profile, transport=MockTransport(lambda request: answer))
    with pytest.raises(kind) as caught:
        await node.inbox()
    err = caught.value
    assert type(err) is kind and err.remote
    assert (err.status, err.detail, err.type_uri) == (kind.status, "as the hub said it",
                                                      PROBLEM_PREFIX + kind.problem)  # fmt: skip
    assert err.answer == json.loads(answer.body)
    assert err.headline() == f"{kind.status} {kind.problem}: as the hub said it"


async def test_a_refusal_is_a_subclass_callers_can_catch_broadly(profile: Profile) -> None:
    node = NodeClient(profile, transport=MockTransport(lambda r: problem(422, "unknown-recipient")))
    with pytest.raises(errors.InputError):
        await node.send(["000.00.00.Z99"], "Gửi nhầm")


async def test_rate_limited_carries_retry_after(profile: Profile) -> None:
    answer = problem(429, "rate-limited")
    limited = Response(429, answer.body, answer.content_type, {"Retry-After": "7"})
    node = NodeClient(profile, transport=MockTransport(lambda r: limited))
    with pytest.raises(errors.RateLimited) as caught:
        await node.inbox()
    assert caught.value.retry_after_s == 7.0


@pytest.mark.parametrize(("wait_s", "seconds"), [(0.02, 1), (1.0, 1), (1.2, 2), (6.5, 7)])
def test_a_wait_is_whole_seconds_as_retry_after_says_it(wait_s: float, seconds: int) -> None:
    """What the hub puts in Retry-After and in the detail: never 0 (a bucket that refills in
    20 ms once said "try again in 0.0 s")."""
    assert errors.RateLimited("over", wait_s).retry_after == seconds


@pytest.mark.parametrize(
    "answer",
    [
        problem(422, "no-such-problem"),  # a type this Axis does not know
        problem(500, "unknown-document"),  # a known type with a status that is not its own
        Response(502, b"<html>Bad Gateway</html>", "text/html"),  # not problem+json at all
    ],
    ids=["unknown type", "wrong status", "html"],
)
async def test_anything_else_is_an_unexpected_answer(profile: Profile, answer: Response) -> None:
    node = NodeClient(profile, transport=MockTransport(lambda r: answer))
    with pytest.raises(errors.UnexpectedAnswer) as caught:
        await node.inbox()
    assert caught.value.status == answer.status and caught.value.remote


async def test_an_unreachable_hub_is_tried_again_with_the_same_bytes(profile: Profile) -> None:
    failures = 2

    def flaky(request: Request) -> Response:
        if len(transport.requests) <= failures:
            raise Unreachable("connection refused")
        assert isinstance(request.body, bytes)
        return accepted(profile, request.body)

    transport = MockTransport(flaky)
    node = NodeClient(profile, retries=3, transport=transport)
    node.prime(DIRECTORY)
    package = node.build_edoc([H41], "Thử lại")
    sent = await node.post_package(package)
    assert sent.created and sent.answer["id"] == "0" * 32
    assert [r.body for r in transport.requests] == [package] * 3
    assert transport.requests[0].headers == {"Content-Type": "application/xml"}


async def test_a_hub_that_stays_away_is_unreachable(profile: Profile) -> None:
    def down(request: Request) -> Response:
        raise Unreachable("connection refused")

    transport = MockTransport(down)
    node = NodeClient(profile, retries=2, transport=transport)
    with pytest.raises(Unreachable):
        await node.ack("0" * 32)
    assert len(transport.requests) == 3


async def test_what_the_client_builds_is_signed_by_the_agency(profile: Profile) -> None:
    """The client's requests carry packages its own key signed (the hub checks the rest)."""
    listed = json.dumps([{"organ_id": H41, "name": "UBND tỉnh Nghệ An", "active": True}])

    def hub(request: Request) -> Response:
        if request.path == "/v1/agencies":
            return Response(200, listed.encode())
        assert isinstance(request.body, bytes)
        return accepted(profile, request.body, 200)

    node = NodeClient(profile, transport=MockTransport(hub))
    await node.send([H41], "Ký số")
    fetch, request = node.transport.requests  # type: ignore[attr-defined]
    assert (fetch.method, fetch.path) == ("GET", "/v1/agencies")  # to name the recipient
    assert request.method == "POST" and request.path == "/v1/packages"
    assert isinstance(request.body, bytes)
    assert request.headers == {"Content-Type": "application/xml"}
    signed_by = signing_cert_of(formats.load_xml(request.body))
    assert signed_by == pki.load_cert(profile.cert.read_bytes())


async def test_a_retry_after_that_is_no_number_of_seconds_is_left_out(profile: Profile) -> None:
    answer = problem(429, "rate-limited")
    for header in ("²", "Wed, 21 Oct 2026 07:28:00 GMT", "-1"):
        odd = Response(429, answer.body, answer.content_type, {"Retry-After": header})

        def limited(request: Request, odd: Response = odd) -> Response:
            return odd

        node = NodeClient(profile, transport=MockTransport(limited))
        with pytest.raises(errors.RateLimited) as caught:
            await node.inbox()
        assert caught.value.retry_after_s == 1.0


async def test_a_rate_limited_type_with_another_status_is_unexpected(profile: Profile) -> None:
    node = NodeClient(profile, transport=MockTransport(lambda r: problem(503, "rate-limited")))
    with pytest.raises(errors.UnexpectedAnswer):
        await node.inbox()


async def test_a_streamed_body_is_not_sent_twice(profile: Profile) -> None:
    """Bytes are resent as they were; a stream is spent once sent, so it is not retried."""

    def down(request: Request) -> Response:
        raise Unreachable("connection reset")

    async def stream() -> AsyncIterator[bytes]:
        yield b"<edXML/>"

    transport = MockTransport(down)
    node = NodeClient(profile, retries=3, transport=transport)
    with pytest.raises(Unreachable):
        await node.post_package(stream())
    assert len(transport.requests) == 1


async def test_what_the_client_fetches_it_reads_only_once_verified(profile: Profile) -> None:
    """A package from the hub goes through the one intake path on this side too: the
    signature of its sender, a CA the hub trusts, the sender named by the certificate."""
    node = NodeClient(profile, transport=MockTransport(lambda r: Response(200, b"{}")))
    node.prime(DIRECTORY)
    package = node.build_edoc([H41], "Công văn đến")
    fetched = {"body": package}
    node.transport = MockTransport(lambda r: Response(200, fetched["body"], "application/xml"))
    edoc = await node.edoc("0" * 32)
    assert edoc.subject == "Công văn đến" and edoc.sender.organ_id == G22
    fetched["body"] = package.replace("Công văn đến".encode(), "Công văn đi".encode())
    with pytest.raises(errors.InvalidSignature):
        await node.edoc("0" * 32)


async def test_a_receipt_the_hub_did_not_sign_is_refused(profile: Profile) -> None:
    """A receipt signed by another key (an agency's, from the same CA) proves nothing: the
    client checks every receipt against the pinned hub certificate (issue 16, class 7)."""
    package = b"<edXML/>"

    def forger(request: Request) -> Response:
        good = json.loads(accepted(profile, package).body)
        signer = ReceiptSigner(profile.key.read_bytes(), profile.cert.read_bytes())
        made = Receipt(good["id"], good["sha256"], profile.organ_id, (H41,), datetime.now(UTC), "x")
        return Response(201, json.dumps({**good, "receipt": signer.sign(made)}).encode())

    node = NodeClient(profile, transport=MockTransport(forger))
    with pytest.raises(errors.InvalidSignature):
        await node.post_package(package)
    node = NodeClient(profile, transport=MockTransport(lambda r: accepted(profile, b"other")))
    with pytest.raises(errors.InvalidSignature, match="another package"):
        await node.post_package(package)


@pytest.mark.parametrize("check_built", [True, False])
async def test_what_the_client_builds_is_checked_against_the_schema_unless_told_not_to(
    profile: Profile, check_built: bool
) -> None:
    """A real agency's client checks its package before signing it; the simulated agencies
    leave that to their hub, which checks every package it takes (and refuses this one)."""
    node = NodeClient(
        profile, transport=MockTransport(lambda r: Response(500, b"")), check_built=check_built
    )
    to = [Organ(H41, "UBND tỉnh Nghệ An")]
    if check_built:
        with pytest.raises(errors.SchemaViolation, match="Priority"):
            node.build_edoc(to, "Khẩn", priority=7)
        return
    built = node.build_edoc(to, "Khẩn", priority=7)
    with pytest.raises(errors.SchemaViolation, match="Priority"):
        formats.validate(formats.load_xml(built))
