"""Typed keys for what the aiohttp applications share."""

from __future__ import annotations

from aiohttp import web

from axis.hub import Hub

HUB = web.AppKey("hub", Hub)
ADMIN_TOKEN = web.AppKey("admin_token", str)
