"""Typed keys for what one request or response carries to the access log and metrics."""

from __future__ import annotations

from aiohttp import web

AGENCY = web.RequestKey("agency", str)  # the OrganId behind the TLS client certificate
PACKAGE_ID = web.RequestKey("package_id", str)  # the package a POST created or resent
PROBLEM = web.ResponseKey("problem", str)  # the problem type name of a refusal
