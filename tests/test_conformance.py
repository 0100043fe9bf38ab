"""What the real axis delivers and QCVN 102:2016 refuses (axis/core/conformance.py), and the
national axis's face reading it (axis.core.intake.read_field_package): the REST gateway's own
packages as it sent them (../shared/vdxp/gateway-bodies), the SDKs' field samples, and
packages signed here. A deviation is taken and recorded by its rule, or refused naming it in
strict mode; an address that is no OrganId, and a signature that does not verify, are
refused in every mode."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import pytest
from cryptography import x509
from lxml import etree

from axis.core import conformance, formats, pki
from axis.core.conformance import Deviation, Rule
from axis.core.edxml_model import NS, Edoc, StatusNotice
from axis.core.intake import FieldRead, IntakePolicy, read_field_package, registered_signer
from axis.core.signing import Signer, VerificationPolicy, Verifier
from axis.errors import InvalidSignature, NotAllowed, SchemaViolation, SenderMismatch
from tests.helpers import FIELD, VDXP

GATEWAY_BODIES = VDXP / "gateway-bodies"
pytestmark = pytest.mark.skipif(
    not GATEWAY_BODIES.exists(), reason="needs ../shared/vdxp (the gateway's packages)"
)

G09, G22, H41 = "000.00.00.G09", "000.00.00.G22", "000.00.00.H41"
#: request-5: the gateway's batch path, G09 to H41 (UUID DocumentId, no Competence, unsigned).
UUID_5 = "4eff58d4-7295-4430-9670-20399763210e"
PLACEHOLDER_SAMPLE = FIELD / "vnpt-sdk-output" / "J1_new_placeholder.edxml"
UNSIGNED_SAMPLE = FIELD / "vnpt-sdk-output" / "J1_new.edxml"  # G09 to H29 and H41
STATUS_SAMPLE = FIELD / "bkav" / "edoc-service_src_main_resources_status_processing_05.edxml"
STATUS_DOCUMENT_ID = "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"
E = f"{{{NS}}}"


@dataclass(frozen=True)
class Identity:
    """G09's key and certificate from a CA of the test's own, and a policy trusting it."""

    cert: x509.Certificate
    signer: Signer
    policy: IntakePolicy


@cache
def g09() -> Identity:
    ca_key, ca_cert = pki.create_ca("Conformance test CA")
    key, cert = pki.issue_agency_cert(ca_key, ca_cert, G09, "Bộ Tài chính")
    policy = IntakePolicy(Verifier(VerificationPolicy(), pki.TrustStore((ca_cert,))))
    return Identity(cert, Signer(pki.key_to_pem(key), pki.cert_to_pem(cert)), policy)


def gateway(number: int) -> bytes:
    return (GATEWAY_BODIES / f"request-{number}.edxml").read_bytes()


def edited(body: bytes, old: str, new: str) -> bytes:
    """``body`` with the one occurrence of ``old`` replaced."""
    assert body.count(old.encode()) == 1, old
    return body.replace(old.encode(), new.encode())


def never_signer(claimed: str, root: etree._Element) -> x509.Certificate:
    raise AssertionError(f"signer_for called for an unsigned package from {claimed}")


def anyone(claimed: str) -> None:
    pass


def read(
    body: bytes,
    *,
    strict: bool = False,
    require_signature: bool = False,
    sender_check: Callable[[str], None] = anyone,
) -> FieldRead:
    """An unsigned package as the face reads it: the verifier is never called on one."""
    return read_field_package(
        body,
        g09().policy,
        sender_check,
        never_signer,
        strict=strict,
        require_signature=require_signature,
    )


def rules(found: FieldRead | tuple[Deviation, ...]) -> list[Rule]:
    deviations = found.deviations if isinstance(found, FieldRead) else found
    return [d.rule for d in deviations]


# -- the gateway's packages -------------------------------------------------------------------


def test_the_gateways_batch_package_reads_with_its_deviations() -> None:
    got = read(gateway(5))
    assert isinstance(got.package, Edoc)
    assert got.package.document_id == UUID_5  # as written, not the conforming one
    assert got.package.sender.organ_id == G09
    assert [r.organ_id for r in got.package.recipients] == [H41]
    assert got.package.signer is not None and got.package.signer.competence is None
    assert got.package.signer.full_name == "Gateway Auto"
    assert got.deviations == (
        Deviation(Rule.UNSIGNED, "none"),
        Deviation(Rule.DOCUMENT_ID, repr(UUID_5)),
        Deviation(Rule.COMPETENCE, "missing"),
    )
    assert rules(got) == [Rule.UNSIGNED, Rule.DOCUMENT_ID, Rule.COMPETENCE]
    assert not got.signed
    assert str(got.deviations[1]) == f"document-id ({UUID_5!r})"


@pytest.mark.parametrize("number", [4, 6, 7])
@pytest.mark.parametrize("strict", [False, True], ids=["lenient", "strict"])
def test_an_address_that_is_no_organ_id_is_refused_in_every_mode(number: int, strict: bool) -> None:
    with pytest.raises(SchemaViolation, match="vxp.saas.03") as exc:
        read(gateway(number), strict=strict, sender_check=lambda _: pytest.fail("checked"))
    assert "To/OrganId" in str(exc.value)


def test_strict_refuses_the_first_deviation_by_its_rule() -> None:
    with pytest.raises(SchemaViolation, match=r"rule unsigned: found none") as exc:
        read(gateway(5), strict=True)
    assert conformance.RULES[Rule.UNSIGNED] in str(exc.value)


def test_a_hub_that_requires_signatures_refuses_the_unsigned() -> None:
    for body in (gateway(5), PLACEHOLDER_SAMPLE.read_bytes(), STATUS_SAMPLE.read_bytes()):
        with pytest.raises(InvalidSignature, match="unsigned"):
            read(body, require_signature=True)
        with pytest.raises(InvalidSignature, match="unsigned"):
            read(body, strict=True, require_signature=True)


def test_the_sender_check_is_asked_about_from() -> None:
    asked: list[str] = []
    read(gateway(5), sender_check=asked.append)
    assert asked == [G09]

    def refuse(claimed: str) -> None:
        raise SenderMismatch(f"{claimed} is no agency of this system")

    with pytest.raises(SenderMismatch, match=f"{G09} is no agency of this system"):
        read(gateway(5), sender_check=refuse)

    def closed(claimed: str) -> None:
        raise NotAllowed(f"{claimed} is closed")

    with pytest.raises(NotAllowed):
        read(STATUS_SAMPLE.read_bytes(), sender_check=closed)


# -- the SDKs' samples ------------------------------------------------------------------------


def test_the_vnpt_placeholder_is_the_one_deviation() -> None:
    got = read(PLACEHOLDER_SAMPLE.read_bytes())
    assert isinstance(got.package, Edoc)
    assert got.deviations == (Deviation(Rule.UNSIGNED, "a placeholder <Signature>"),)
    assert got.package.document_id == "000.00.00.G09,2026/11/29,12/BTC-VP"
    with pytest.raises(SchemaViolation, match="placeholder <Signature>"):
        read(PLACEHOLDER_SAMPLE.read_bytes(), strict=True)


def test_the_bkav_status_reads_as_a_status() -> None:
    got = read(STATUS_SAMPLE.read_bytes())
    assert isinstance(got.package, StatusNotice)
    assert got.package.status_code == "05" and got.package.sender.organ_id == H41
    assert got.package.response_for.document_id == STATUS_DOCUMENT_ID
    assert got.deviations == (Deviation(Rule.UNSIGNED, "none"),)


def test_a_status_answering_a_uuid_keeps_it() -> None:
    body = edited(
        STATUS_SAMPLE.read_bytes(),
        f"<edXML:DocumentId>{STATUS_DOCUMENT_ID}</edXML:DocumentId>",
        f"<edXML:DocumentId>{UUID_5}</edXML:DocumentId>",
    )
    got = read(body)
    assert isinstance(got.package, StatusNotice)
    assert got.package.response_for.document_id == UUID_5
    assert got.package.response_for.organ_id == G22
    assert got.deviations == (
        Deviation(Rule.UNSIGNED, "none"),
        Deviation(Rule.DOCUMENT_ID, repr(UUID_5)),
    )
    # The conforming copy the reader saw: the DocumentId its own ResponseFor makes.
    root = formats.load_xml(body)
    fixed = conformance.conforming(root, conformance.inspect(root))
    assert fixed.findtext(f".//{E}ResponseFor/{E}DocumentId") == STATUS_DOCUMENT_ID


def test_a_trace_organ_id_of_null_is_kept_as_written() -> None:
    root = formats.load_xml(gateway(5))
    trace = root.find(f".//{E}TraceHeaderList/{E}TraceHeader/{E}OrganId")
    assert trace is not None and trace.text == G09
    trace.text = "null"  # as the gateway's single-send path writes it
    body = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    got = read(body)
    assert isinstance(got.package, Edoc)
    assert [t.organ_id for t in got.package.traces] == ["null"]
    assert rules(got) == [Rule.UNSIGNED, Rule.DOCUMENT_ID, Rule.COMPETENCE, Rule.TRACE_ORGAN_ID]
    assert got.deviations[-1] == Deviation(Rule.TRACE_ORGAN_ID, "'null'")
    assert got.package.document_id == UUID_5
    with pytest.raises(SchemaViolation, match="rule unsigned"):
        read(body, strict=True)


# -- inspect and conforming -------------------------------------------------------------------


def test_conforming_is_the_tree_itself_when_only_the_signature_deviates() -> None:
    root = formats.load_xml(STATUS_SAMPLE.read_bytes())
    before = etree.tostring(root)
    deviations = conformance.inspect(root)
    assert rules(deviations) == [Rule.UNSIGNED]
    assert conformance.conforming(root, deviations) is root
    assert etree.tostring(root) == before
    signed = formats.load_xml(g09().signer.sign(formats.load_xml(UNSIGNED_SAMPLE.read_bytes())))
    before = etree.tostring(signed)
    assert conformance.inspect(signed) == ()
    assert conformance.conforming(signed, ()) is signed
    assert etree.tostring(signed) == before


def test_conforming_takes_a_placeholder_out_of_the_tree_it_is_given() -> None:
    root = formats.load_xml(PLACEHOLDER_SAMPLE.read_bytes())
    deviations = conformance.inspect(root)
    assert conformance.conforming(root, deviations) is root
    assert root.find(f".//{E}edXMLHeader/{E}Signature") is None
    assert conformance.inspect(root) == (Deviation(Rule.UNSIGNED, "none"),)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(lambda: gateway(5), id="gateway-5"),
        pytest.param(
            lambda: edited(
                PLACEHOLDER_SAMPLE.read_bytes(),
                "<edXML:DocumentId>000.00.00.G09,2026/11/29,12/BTC-VP</edXML:DocumentId>",
                f"<edXML:DocumentId>{UUID_5}</edXML:DocumentId>",
            ),
            id="placeholder-and-uuid",
        ),
        pytest.param(lambda: gateway(4), id="gateway-4"),
    ],
)
def test_conforming_never_alters_the_tree_it_is_given_otherwise(body: Callable[[], bytes]) -> None:
    root = formats.load_xml(body())
    before = etree.tostring(root)
    deviations = conformance.inspect(root)
    assert etree.tostring(root) == before  # inspect reads only
    assert set(rules(deviations)) - {Rule.UNSIGNED}
    fixed = conformance.conforming(root, deviations)
    assert fixed is not root
    assert etree.tostring(root) == before
    # What is left of the copy's deviations is the missing signature alone.
    assert conformance.inspect(fixed) == (Deviation(Rule.UNSIGNED, "none"),)
    sender = fixed.findtext(f".//{E}MessageHeader/{E}From/{E}OrganId")
    assert fixed.findtext(f".//{E}MessageHeader/{E}DocumentId", "").startswith(f"{sender},")
    if Rule.COMPETENCE in rules(deviations):
        assert [c.text for c in fixed.iterfind(f".//{E}SignerInfo/{E}Competence")] == ["-"]
    assert all(
        node.text == sender
        for node in fixed.iterfind(f".//{E}TraceHeaderList/{E}TraceHeader/{E}OrganId")
    )


def test_the_conforming_copy_of_the_gateways_package() -> None:
    root = formats.load_xml(gateway(5))
    fixed = conformance.conforming(root, conformance.inspect(root))
    assert fixed.findtext(f".//{E}MessageHeader/{E}DocumentId") == f"{G09},2026/12/03,12/BTC-VP"
    assert [c.text for c in fixed.iterfind(f".//{E}SignerInfo/{E}Competence")] == ["-"]
    assert root.find(f".//{E}SignerInfo/{E}Competence") is None
    formats.validate(fixed)


def test_every_rule_says_what_it_requires() -> None:
    assert set(conformance.RULES) == set(Rule)
    assert all(conformance.RULES[rule] for rule in Rule)


# -- signed packages --------------------------------------------------------------------------


def read_signed(body: bytes, *, strict: bool = False) -> FieldRead:
    identity = g09()
    asked: list[str] = []

    def signer_for(claimed: str, root: etree._Element) -> x509.Certificate:
        asked.append(claimed)
        return registered_signer(G09, identity.cert)(claimed, root)

    got = read_field_package(
        body, identity.policy, anyone, signer_for, strict=strict, require_signature=True
    )
    assert asked == [G09]
    return got


def sign(body: bytes) -> bytes:
    return g09().signer.sign(formats.load_xml(body))


def test_a_correctly_signed_package_reads_with_no_deviation() -> None:
    body = sign(UNSIGNED_SAMPLE.read_bytes())
    got = read_signed(body)
    assert got.deviations == () and got.signed
    assert isinstance(got.package, Edoc) and got.package.sender.organ_id == G09
    assert read_signed(body, strict=True) == got


def test_a_signed_package_with_one_byte_of_its_subject_changed_is_refused() -> None:
    body = sign(UNSIGNED_SAMPLE.read_bytes())
    start = body.index(b"<edXML:Subject>") + len(b"<edXML:Subject>")
    assert body[start : start + 1] == b"V"
    changed = body[:start] + b"W" + body[start + 1 :]
    for strict in (False, True):
        with pytest.raises(InvalidSignature):
            read_signed(changed, strict=strict)


def test_a_signed_package_with_deviations_is_verified_and_recorded() -> None:
    body = sign(gateway(5)[:-2])
    got = read_signed(body)
    assert got.signed
    assert got.deviations == (
        Deviation(Rule.DOCUMENT_ID, repr(UUID_5)),
        Deviation(Rule.COMPETENCE, "missing"),
    )
    assert isinstance(got.package, Edoc) and got.package.document_id == UUID_5
    assert got.package.signer is not None and got.package.signer.competence is None
    with pytest.raises(SchemaViolation, match="rule document-id"):
        read_signed(body, strict=True)
    start = body.index(b"<edXML:Subject>") + len(b"<edXML:Subject>")
    changed = body[:start] + bytes([body[start] ^ 1]) + body[start + 1 :]
    with pytest.raises(InvalidSignature):
        read_signed(changed)
