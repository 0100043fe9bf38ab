"""What an edXML package must look like before anybody reads it: the XSDs and the rules they
cannot say, each refusal naming the element and the rule.

Theory of operation. QCVN 102:2016 fixes names, namespace, identifiers, dates and codes; agency
software in the field disagrees on the order of children, since receivers read them by name.
So the XSDs in ``schemas/`` take children in any order (``xs:all``, or a choice where a child
may repeat), and this module checks what a choice cannot: how many times each child of
``edXMLHeader``, ``MessageHeader`` and ``TraceHeaderList`` may appear (:data:`CARDINALITIES`),
that each manifest ``Reference`` and each ``Attachment`` match by ContentId (``cid:`` or not),
and that the header does not hold the SDKs' placeholder signature instead of a real one. The
XSD's own messages are made readable: the element's path, and the form a value must take.

Pure: it reads the XSD files once per thread, and nothing else.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from lxml import etree

from axis.core.edxml_model import DS_NS, NS, ORGAN_ID_FORMS, PackageKind
from axis.errors import InvalidSignature, SchemaViolation, SetupError

_NSMAP = {"e": NS}
UNBOUNDED = 1_000_000

# (least, most) of each child, where the XSD's choice cannot say it: per package kind, per
# parent element's local name. ``ds:Signature`` is the XMLDSig one (at most one here; the
# signature rules want exactly one, checked where signatures are).
_ONE, _OPTIONAL, _SOME, _ANY = (1, 1), (0, 1), (1, UNBOUNDED), (0, UNBOUNDED)
CARDINALITIES: Mapping[PackageKind, Mapping[str, Mapping[str, tuple[int, int]]]] = (
    MappingProxyType(
        {
            PackageKind.EDOC: {
                "edXMLHeader": {
                    "MessageHeader": _ONE, "TraceHeaderList": _ONE, "ds:Signature": _OPTIONAL,
                },
                "MessageHeader": {
                    "From": _ONE, "To": _SOME, "DocumentId": _ONE, "Code": _ONE,
                    "PromulgationInfo": _ONE, "DocumentType": _ONE, "Subject": _ONE,
                    "Content": _OPTIONAL, "SignerInfo": _OPTIONAL, "DueDate": _OPTIONAL,
                    "OtherInfo": _OPTIONAL, "SteeringType": _OPTIONAL, "ToPlaces": _OPTIONAL,
                    "ResponseFor": _ANY, "ResponseForTask": _OPTIONAL,
                    "ApplicationType": _OPTIONAL,
                },
                "TraceHeaderList": {"TraceHeader": _ANY, "Bussiness": _ONE},
            },
            PackageKind.STATUS: {
                "edXMLHeader": {
                    "MessageHeader": _ONE, "TraceHeaderList": _OPTIONAL,
                    "ds:Signature": _OPTIONAL,
                },
                "TraceHeaderList": {"TraceHeader": _ANY, "Bussiness": _OPTIONAL},
            },
        }
    )
)  # fmt: skip

# What the SDKs write where a signature goes when they do not sign: the Java SDK a
# <Signature> in the edXML namespace with fixed fake values, the .NET one <DigitalSignature/>.
PLACEHOLDERS = frozenset({f"{{{NS}}}Signature", "Signature", f"{{{NS}}}DigitalSignature"})


def _q(name: str) -> str:
    return f"{{{NS}}}{name}"


def header(root: etree._Element) -> etree._Element:
    """The ``edXMLHeader`` element, where the signature goes. Raises SchemaViolation if absent."""
    found = root.find("e:edXMLEnvelope/e:edXMLHeader", _NSMAP)
    if found is None:
        raise SchemaViolation("edXML: no edXMLEnvelope/edXMLHeader")
    return found


def package_kind(root: etree._Element) -> PackageKind:
    """Tell an edoc from a status by structure. Raises SchemaViolation if it is neither."""
    if root.tag != _q("edXML"):
        raise SchemaViolation(f"the root element must be edXML in the namespace {NS}")
    message = header(root).find("e:MessageHeader", _NSMAP)
    if message is None:
        raise SchemaViolation("edXMLHeader: MessageHeader is missing")
    if message.find("e:StatusCode", _NSMAP) is not None:
        return PackageKind.STATUS
    if any(message.find(f"e:{name}", _NSMAP) is not None for name in ("To", "Subject")):
        return PackageKind.EDOC
    raise SchemaViolation(
        "MessageHeader: neither an edoc's (To, Subject) nor a status's (StatusCode)"
    )


_SCHEMA_FILES = {PackageKind.EDOC: "edoc.xsd", PackageKind.STATUS: "status.xsd"}
_schema_cache = threading.local()  # lxml validators keep an error log: one set per thread
# Building a schema (parsing the XSDs and their includes) is not safe in two threads at once:
# libxml2 can fail to load an include then. Validating with a built one, per thread, is.
_schema_build_lock = threading.Lock()


def schema_dir() -> Path:
    """Where the XSDs are: the repository's ``schemas/``, or the installed ``axis/schemas``."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[2] / "schemas", here.parents[1] / "schemas"):
        if (candidate / "common.xsd").is_file():
            return candidate
    raise SetupError("the edXML schemas (schemas/*.xsd) are not installed")


def _schema(kind: PackageKind) -> etree.XMLSchema:
    cache: dict[PackageKind, etree.XMLSchema] = _schema_cache.__dict__.setdefault("schemas", {})
    if kind not in cache:
        path = schema_dir() / _SCHEMA_FILES[kind]
        try:
            with _schema_build_lock:
                cache[kind] = etree.XMLSchema(etree.parse(str(path)))
        except (etree.LxmlError, OSError) as exc:
            raise SetupError(f"cannot load {path}: {exc}") from exc
    return cache[kind]


def validate(root: etree._Element) -> PackageKind:
    """Check a package's structure and return its kind.

    Raises:
        InvalidSignature: the header holds an SDK's placeholder instead of a signature.
        SchemaViolation: naming the element and the rule (the XSD's, made readable, or a count
            or ContentId rule of this module).
    """
    kind = package_kind(root)
    head = header(root)
    _refuse_placeholder(head)
    schema = _schema(kind)
    if not schema.validate(root):
        log: Any = schema.error_log  # (the stubs lack its sequence methods)
        first = log[0]  # the first error in document order
        raise SchemaViolation(f"{kind} package, {_readable(root, first)}")
    _check_counts(kind, "edXMLHeader", head)
    for parent in ("MessageHeader", "TraceHeaderList"):
        node = head.find(f"e:{parent}", _NSMAP)
        if node is not None:
            _check_counts(kind, parent, node)
    if kind is PackageKind.EDOC:
        _check_content_ids(root)
    return kind


def _refuse_placeholder(head: etree._Element) -> None:
    for child in head:
        if child.tag in PLACEHOLDERS:
            name = etree.QName(child).localname
            raise InvalidSignature(
                f"edXMLHeader holds a placeholder <{name}> (an SDK writes one when it does not"
                " sign), not a signature: put a real XMLDSig enveloped signature there, in the"
                f' namespace {DS_NS}, with Reference URI="" over the whole package'
            )


def _name(child: etree._Element) -> str:
    qname = etree.QName(child)
    return f"ds:{qname.localname}" if qname.namespace == DS_NS else qname.localname


def _check_counts(kind: PackageKind, parent: str, node: etree._Element) -> None:
    rules = CARDINALITIES[kind].get(parent)
    if rules is None:
        return
    counts = Counter(_name(child) for child in node if isinstance(child.tag, str))
    for child, (least, most) in rules.items():
        found = counts.get(child, 0)
        if found < least:
            need = "once" if most == 1 else "at least once"
            raise SchemaViolation(
                f"{kind} package, {parent}: {child} is missing (it must appear {need})"
            )
        if found > most:
            allowed = "once" if least == 1 else "at most once"
            raise SchemaViolation(
                f"{kind} package, {parent}: {child} appears {found} times (it may appear {allowed})"
            )


def content_key(content_id: str) -> str:
    """A ContentId as References and Attachments are matched: without its ``cid:``."""
    return content_id.removeprefix("cid:")


def _check_content_ids(root: etree._Element) -> None:
    """Each manifest Reference names an Attachment and each Attachment has a Reference, once,
    ``cid:`` or not."""
    references = [
        n.text or "" for n in root.iterfind("e:edXMLEnvelope/e:edXMLBody/e:edXMLManifest/"
                                            "e:Reference/e:ContentId", _NSMAP)
    ]  # fmt: skip
    attachments = [
        n.text or "" for n in root.iterfind("e:AttachmentEncoded/e:Attachment/e:ContentId", _NSMAP)
    ]
    for where, ids in (("edXMLManifest/Reference", references), ("Attachment", attachments)):
        keys = Counter(content_key(i) for i in ids)
        twice = [k for k, n in keys.items() if n > 1]
        if twice:
            raise SchemaViolation(f"{where}: ContentId {twice[0]!r} appears more than once")
    unmatched = set(map(content_key, references)) ^ set(map(content_key, attachments))
    if unmatched:
        missing = sorted(unmatched)[0]
        side = "Attachment" if missing in set(map(content_key, references)) else "Reference"
        raise SchemaViolation(
            f"ContentId {missing!r}: the manifest's References and the Attachments must match"
            f" one for one (cid: or not), and no {side} has it"
        )


# -- the XSD's messages, readable -----------------------------------------------------------

_FORMS = {
    "[0-9]{4}/(0[1-9]|1[0-2])/(0[1-9]|[12][0-9]|3[01])": (
        "is not a date in the form yyyy/MM/dd (QCVN 102:2016), e.g. 2020/10/30"
    ),
    "[0-9]{4}/(0[1-9]|1[0-2])/(0[1-9]|[12][0-9]|3[01]) ([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]": (
        "is not a time in the form yyyy/MM/dd HH:mm:ss, e.g. 2020/10/30 08:15:00"
    ),
    "[0-9]{3}\\.[0-9]{2}\\.[0-9]{2}\\.[A-Z][0-9]{2}": f"is not an OrganId ({ORGAN_ID_FORMS})",
    "[A-Z][0-9]{2}(\\.[0-9A-Z]+)*": f"is not an OrganId ({ORGAN_ID_FORMS})",
}
_PATTERN = re.compile(r"\[facet 'pattern'\] The value '(.*)' is not accepted by the pattern '(.*)'")
_TOO_LONG = re.compile(
    r"\[facet 'maxLength'\] The value has a length of '([0-9]+)';"
    r" this exceeds the allowed maximum length of '([0-9]+)'"
)
_ABOVE = frozenset({"edXML", "edXMLEnvelope", "edXMLHeader"})


def path_of(element: etree._Element) -> str:
    """``MessageHeader/To[2]/OrganId``: where an element is, by local names from below the
    envelope, numbered where siblings share a name."""
    steps = []
    node: etree._Element | None = element
    while node is not None and etree.QName(node).localname not in _ABOVE:
        name = etree.QName(node).localname
        parent = node.getparent()
        if parent is not None:
            same = [s for s in parent if isinstance(s.tag, str) and s.tag == node.tag]
            if len(same) > 1:
                name += f"[{same.index(node) + 1}]"
        steps.append(name)
        node = parent
    return "/".join(reversed(steps)) or etree.QName(element).localname


def _located(root: etree._Element, error: etree._LogEntry) -> str:
    try:
        found = root.getroottree().xpath(error.path, namespaces={"edXML": NS, "ds": DS_NS})
    except etree.XPathError:
        found = None
    if isinstance(found, list) and found and isinstance(found[0], etree._Element):
        return path_of(found[0])
    return error.path or "edXML"


def _readable(root: etree._Element, error: etree._LogEntry) -> str:
    """``MessageHeader/PromulgationInfo/PromulgationDate: '30/10/2020' is not a date …``"""
    message = error.message.replace(f"{{{NS}}}", "").replace(f"{{{DS_NS}}}", "ds:")
    path = _located(root, error)
    line = f" (line {error.line})" if error.line else ""
    pattern = _PATTERN.search(message)
    if pattern is not None:
        value, regex = pattern.groups()
        form = _FORMS.get(regex, f"does not match {regex}")
        return f"{path}: {value!r} {form}{line}"
    too_long = _TOO_LONG.search(message)
    if too_long is not None:
        length, most = too_long.groups()
        if path.endswith("OrganId"):
            return (
                f"{path}: {length} characters, longer than an OrganId ({ORGAN_ID_FORMS},"
                f" at most {most}){line}"
            )
        return f"{path}: {length} characters, more than the {most} it may have{line}"
    detail = re.sub(r"^Element '([^']*)': ", "", message)
    return f"{path}: {detail}{line}"
