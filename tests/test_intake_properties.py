"""Property tests over the one intake path (axis.core.intake: parse, schema, signature, read),
which the hub and an agency's push endpoint both use: a signed package changed in any way
hypothesis finds is either accepted or refused with one of the project's own input errors,
never another exception. (An empty ds:SignatureValue once got through the schema to signxml
and came out as a 500.)"""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from axis.core import formats, pki
from axis.core.intake import IntakePolicy, key_info_signer, read_package, registered_signer
from axis.core.signing import VerificationPolicy, Verifier
from axis.errors import InputError
from tests.helpers import SAMPLES

POLICY = IntakePolicy(
    Verifier(VerificationPolicy(), pki.TrustStore.from_pem_files([SAMPLES / "outside-ca.pem"]))
)
SIGNED = {
    "edoc-signed.xml": "000.00.00.G22",
    "status-signed.xml": "000.00.00.H41",
}


def intake(data: bytes, organ_id: str) -> None:
    """The hub's intake of a body from ``organ_id``, with its registered certificate; then
    the push endpoint's, which takes the certificate from KeyInfo."""
    cert = pki.load_cert((SAMPLES / f"{organ_id}.pem").read_bytes())
    read_package(data, POLICY, registered_signer(organ_id, cert))
    read_package(data, POLICY, key_info_signer)


# Text lxml can hold (no NUL or control characters); bytes that are not XML are the other
# property test's job (tests/test_formats.py).
XML_TEXT = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\ufffe\uffff"),
    max_size=20,
)
ACTIONS = ("empty", "drop", "duplicate", "text", "attribute", "into-signature", "unwrap")


@st.composite
def changed_trees(draw: st.DrawFn) -> tuple[bytes, str]:
    name = draw(st.sampled_from(sorted(SIGNED)))
    root = etree.fromstring((SAMPLES / name).read_bytes())
    for _ in range(draw(st.integers(1, 3))):
        elements = [e for e in root.iter() if isinstance(e.tag, str)]
        signature = [e for e in elements if e.tag.startswith(f"{{{formats.DS_NS}}}")]
        # Half the changes go to the signature: a few elements where the attacks live.
        pick = st.sampled_from(elements)
        element = draw(st.sampled_from(signature) | pick if signature else pick)
        parent = element.getparent()
        action = draw(st.sampled_from(ACTIONS))
        if action == "empty":
            element.text = None
            for child in list(element):
                element.remove(child)
        elif action == "drop" and parent is not None:
            parent.remove(element)
        elif action == "duplicate" and parent is not None:
            element.addnext(copy.deepcopy(element))
        elif action == "text":
            element.text = draw(XML_TEXT)
        elif action == "attribute":
            element.set(draw(st.sampled_from(["URI", "Algorithm", "Id", "x"])), draw(XML_TEXT))
        elif action == "into-signature":
            ds_signature = next(root.iter(f"{{{formats.DS_NS}}}Signature"), None)
            if ds_signature is not None and element is not root:
                ds_signature.append(copy.deepcopy(element))
        elif action == "unwrap" and parent is not None and len(element):
            index = parent.index(element)
            parent.remove(element)
            for offset, child in enumerate(list(element)):
                parent.insert(index + offset, child)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8"), SIGNED[name]


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changed_trees())
def test_a_changed_package_is_accepted_or_refused_with_an_input_error(
    case: tuple[bytes, str],
) -> None:
    data, organ_id = case
    try:
        intake(data, organ_id)
    except InputError:
        pass


def test_the_unchanged_samples_pass_the_intake() -> None:
    for name, organ_id in SIGNED.items():
        intake((SAMPLES / name).read_bytes(), organ_id)


@settings(max_examples=300)
@given(data=st.binary(max_size=300), width=st.integers(min_value=4, max_value=120))
def test_base64_in_lines_or_not_reads_back(data: bytes, width: int) -> None:
    """An attachment's base64 reads back whole, on one line or in lines of any width (the
    field's software writes both)."""
    import base64

    from axis.core.edxml_read import decode_base64

    text = base64.b64encode(data).decode()
    assert decode_base64(text) == data
    assert decode_base64("\n".join(text[i : i + width] for i in range(0, len(text), width))) == data


@settings(max_examples=2000)
@given(text=st.text(alphabet="ABCDab01+/=\n \t-_*é", max_size=24))
def test_base64_taken_is_base64_the_standard_library_takes(text: str) -> None:
    """Whatever the fast decoder takes, the standard library's strict reading takes too and
    reads alike: nothing that is not base64 gets in by the faster path."""
    import base64
    import binascii

    from axis.core.edxml_read import decode_base64

    try:
        got = decode_base64(text)
    except ValueError:
        return
    try:
        expected = base64.b64decode("".join(text.split()), validate=True)
    except (ValueError, binascii.Error):
        raise AssertionError(f"{text!r} was taken, the standard library refuses it") from None
    assert got == expected
