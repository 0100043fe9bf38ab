"""Typed keys for what the aiohttp applications share."""

from __future__ import annotations

from aiohttp import web

from axis.usecases.hub import Hub
from axis.web.metrics import HubMetrics

HUB = web.AppKey("hub", Hub)
ADMIN_TOKEN = web.AppKey("admin_token", str)
METRICS = web.AppKey("metrics", HubMetrics)
SESSION_KEY = web.AppKey("session_key", bytes)  # signs dashboard sessions (admin.session_key)
