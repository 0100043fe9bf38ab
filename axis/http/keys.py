"""Typed keys for what one request or response carries to the access log and metrics."""

from __future__ import annotations

from aiohttp import web

AGENCY = web.RequestKey("agency", str)  # the OrganId behind the TLS client certificate
PACKAGE_ID = web.RequestKey("package_id", str)  # the package a POST created or resent
PROBLEM = web.ResponseKey("problem", str)  # the problem type name of a refusal

#: The response header of ``GET /v1/packages/{id}`` that says how the national axis's face took
#: the package (unsigned, deviations from QCVN 102:2016), percent-encoded UTF-8; absent when
#: it came signed and conforming. The node client reads such a package as the hub vouched.
NOTES_HEADER = "Axis-Notes"
