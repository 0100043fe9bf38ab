"""A hardened XML parser for bytes that come from outside.

Theory of operation: everything a caller sends passes through :func:`load_xml` before any other
code looks at it. The parser refuses, with :class:`~axis.errors.MalformedXml` or
:class:`~axis.errors.TooLarge`, anything an edXML package never needs and an attacker would
use:

- more than ``max_bytes`` of input, more than ``max_elements`` elements, nesting deeper than
  ``max_depth``, more namespace declarations (in all, or on one element) or attributes (on one
  element) than a package needs: they are what makes canonicalization, and so verifying a
  signature, expensive;
- any DOCTYPE, internal or external: without one no entity can be declared, so XXE (file or
  network), billion laughs and external DTD fetches cannot even start. The prolog is scanned
  *before* libxml2 sees the bytes, so a DTD never reaches the parser's entity machinery;
- processing instructions (an edXML package has no use for them; stylesheet PIs invite
  downstream processing of untrusted content);
- encodings other than UTF-8 (QCVN 102:2016 packages are UTF-8; a body that declares one
  encoding and is written in another is not well-formed anyway).

libxml2 itself runs with no network, no DTD loading, no entity substitution. Its built-in 10 MB
text-node cap is lifted (``huge_text``) so that real attachments, base64 in one text node, fit
within ``max_bytes``; that is safe only because the DOCTYPE is refused first and our own size,
depth and element limits stay in force. No lxml exception escapes: each is translated with
``raise ... from exc``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from io import BytesIO

from lxml import etree

from axis.errors import MalformedXml, TooLarge

__all__ = ["DEFAULT_LIMITS", "ParseLimits", "load_xml"]

_UTF8_BOM = b"\xef\xbb\xbf"
_BLANKS = re.compile(rb"[ \t\r\n]*")
_UTF8_NAMES = frozenset({"UTF-8", "UTF8"})


@dataclass(frozen=True)
class ParseLimits:
    """Resource limits for :func:`load_xml`.

    ``huge_text`` lets a single text node (a base64 attachment) exceed libxml2's 10 MB default;
    the total is still bounded by ``max_bytes``.
    """

    max_bytes: int = 50 * 1024 * 1024
    max_depth: int = 64
    max_elements: int = 200_000
    # Canonicalization (the signature's C14N) costs namespaces in scope times elements, and
    # grows quadratically with declarations: an edXML package declares a handful.
    max_namespaces: int = 64  # declarations in the whole package
    max_namespaces_per_element: int = 8
    max_attributes: int = 32  # on one element
    huge_text: bool = True


DEFAULT_LIMITS = ParseLimits()


def load_xml(data: bytes, limits: ParseLimits = DEFAULT_LIMITS) -> etree._Element:
    """Parse untrusted bytes into an element tree, refusing anything unsafe.

    Returns the root element. Raises :class:`TooLarge` when ``data`` is longer than
    ``limits.max_bytes`` or has more than ``limits.max_elements`` elements, and
    :class:`MalformedXml` for anything not well-formed, any DOCTYPE/DTD/entity declaration, any
    processing instruction, a comment inside the root element, nesting deeper than
    ``limits.max_depth``, or a non-UTF-8 encoding.
    """
    if not isinstance(data, bytes):
        if not isinstance(data, bytearray | memoryview):
            raise MalformedXml("the body must be bytes")
        data = bytes(data)
    if len(data) > limits.max_bytes:
        raise TooLarge(f"the body has {len(data)} bytes; the limit is {limits.max_bytes}")
    _refuse_doctype(data)
    try:
        root = _parse(data, limits)
    except (TooLarge, MalformedXml):
        raise
    except (etree.LxmlError, ValueError, LookupError) as exc:
        raise MalformedXml(f"not well-formed XML: {exc}") from exc
    _check_document(root)
    return root


def _refuse_doctype(data: bytes) -> None:
    """Walk the prolog (XML declaration, comments, PIs, blanks) up to the root element.

    A ``<!`` that is not a comment can only be a DOCTYPE here, which is refused before libxml2
    reads it. Bytes that do not start like UTF-8 XML (e.g. a UTF-16 BOM) are refused too.
    """
    pos = len(_UTF8_BOM) if data.startswith(_UTF8_BOM) else 0
    while True:
        match = _BLANKS.match(data, pos)
        pos = match.end() if match else pos
        if data.startswith(b"<?", pos):
            pos = _skip_past(data, pos + 2, b"?>", "the XML declaration")
        elif data.startswith(b"<!--", pos):
            pos = _skip_past(data, pos + 4, b"-->", "a comment")
        elif data.startswith(b"<!", pos):
            raise MalformedXml("DOCTYPE and DTD declarations are not accepted")
        elif data.startswith(b"<", pos):
            return
        elif pos >= len(data):
            raise MalformedXml("the body has no root element")
        else:
            raise MalformedXml("the body is not UTF-8 XML (it must start with '<')")


def _skip_past(data: bytes, start: int, terminator: bytes, what: str) -> int:
    end = data.find(terminator, start)
    if end < 0:
        raise MalformedXml(f"unterminated {what}")
    return end + len(terminator)


def _parse(data: bytes, limits: ParseLimits) -> etree._Element:
    """Parse with libxml2 locked down, enforcing depth and element limits as events arrive."""
    events = etree.iterparse(
        BytesIO(data),
        events=("start", "end", "start-ns", "pi", "comment"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        recover=False,
        huge_tree=limits.huge_text,
        remove_comments=False,
        remove_pis=False,
    )
    depth = 0
    count = 0
    declared = 0  # namespace declarations in the package
    pending = 0  # … on the element about to start
    commented = False
    for event, node in events:
        if event == "start-ns":
            declared += 1
            pending += 1
            if declared > limits.max_namespaces:
                raise MalformedXml(
                    f"more than {limits.max_namespaces} namespace declarations in the package"
                )
            if pending > limits.max_namespaces_per_element:
                raise MalformedXml(
                    f"more than {limits.max_namespaces_per_element} namespace declarations"
                    " on one element"
                )
            continue
        if event == "pi":
            raise MalformedXml("processing instructions are not accepted")
        if event == "comment":
            # Most C14N methods leave comments out of the signature, so a comment inside the
            # package is unsigned text that could change what a recipient reads. Refused once
            # the parse is through: a document that is not well-formed says that first.
            commented = commented or depth > 0
            continue
        if event == "end":
            depth -= 1
            continue
        depth += 1
        count += 1
        pending = 0
        if len(node.attrib) > limits.max_attributes:
            raise MalformedXml(f"an element has more than {limits.max_attributes} attributes")
        if depth > limits.max_depth:
            raise MalformedXml(f"elements are nested deeper than {limits.max_depth} levels")
        if count > limits.max_elements:
            raise TooLarge(f"the body has more than {limits.max_elements} elements")
    if commented:
        raise MalformedXml("comments inside the package are not accepted")
    root: etree._Element = events.root
    return root


def _check_document(root: etree._Element) -> None:
    """Defence in depth after the parse: no DTD slipped through, the encoding is UTF-8."""
    docinfo = root.getroottree().docinfo
    doctype: object = getattr(docinfo, "doctype", "")
    if doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise MalformedXml("DOCTYPE and DTD declarations are not accepted")
    encoding = (docinfo.encoding or "UTF-8").upper()
    if encoding not in _UTF8_NAMES:
        raise MalformedXml(f"only UTF-8 is accepted, not {docinfo.encoding}")
    for node in root.iter(etree.Entity):
        raise MalformedXml(f"entity references are not accepted: {node}")
