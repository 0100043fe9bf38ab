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


FIELD_CHARS = 300  # what one field of a line carries at most (a stranger's path, a detail)
LINE_CHARS = 4000  # … and one whole line, the exception's trace aside


def bounded(value: object) -> object:
    """A field as a line may carry it: strings cut to FIELD_CHARS, the rest as it is."""
    if isinstance(value, str) and len(value) > FIELD_CHARS:
        return value[:FIELD_CHARS] + f"…(+{len(value) - FIELD_CHARS})"
    return value


def escaped(text: str) -> str:
    """Control characters as visible escapes: nothing a client sent (``%0A`` in a path,
    decoded) can begin a line of its own in the text log."""
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
    )


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": bounded(record.getMessage()),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = bounded(value)  # JSON escapes control characters itself
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.msg, record.args = bounded(record.getMessage()), None
        text = super().format(record)
        trace = ""
        if record.exc_info or record.stack_info:  # our own traceback: its lines stay lines
            head, _, trace = text.partition("\n")
            text, trace = head, "\n" + trace
        extras = [f"{n}={bounded(getattr(record, n))}" for n in FIELDS if getattr(record, n, None)]
        line = escaped(f"{text} {' '.join(extras)}" if extras else text)[:LINE_CHARS]
        return line + trace


def configure(fmt: str = "text", level: int = logging.INFO) -> None:
    """Send every Axis log line to stderr in ``fmt`` ("text" or "json")."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
