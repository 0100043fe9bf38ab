"""Logs for humans and machines: one line per request and per state change.

``--log-format json`` writes each record as one JSON object with the fields that matter for
following a package (``package_id``, ``organ_id``, ``event``, ``method``, ``path``, ``status``,
``ms``), so ``grep PACKAGE_ID`` on the log shows its whole life.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

FIELDS = (
    "event",
    "package_id",
    "organ_id",
    "detail",
    "cert_sha256",
    "log_seq",
    "method",
    "path",
    "status",
    "ms",
    "agency",
    "problem",
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = [f"{n}={getattr(record, n)}" for n in FIELDS if getattr(record, n, None)]
        return f"{text} {' '.join(extras)}" if extras else text


def configure(fmt: str = "text", level: int = logging.INFO) -> None:
    """Send every Axis log line to stderr in ``fmt`` ("text" or "json")."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
