"""Logs for humans and machines: one line per request and per state change.

``--log-format json`` writes each record as one JSON object with the fields that matter for
following a package (``package_id``, ``organ_id``, ``event``, ``method``, ``path``, ``status``,
``ms``), so ``grep PACKAGE_ID`` on the log shows its whole life.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TextIO

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
        self._second: int | None = None  # the second whose date and time ``_stamp`` holds
        self._stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        """The base class's text (``2026-12-04 16:29:04,107``), the date and time part made
        once a second: a hub writes thousands of lines a second, and strftime was a tenth of
        each line's cost."""
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if second != self._second:
            self._stamp = time.strftime(self.default_time_format, self.converter(record.created))
            self._second = second
        return f"{self._stamp},{int(record.msecs):03d}"

    def format(self, record: logging.LogRecord) -> str:
        record.msg, record.args = bounded(record.getMessage()), None
        text = super().format(record)
        trace = ""
        if record.exc_info or record.stack_info:  # our own traceback: its lines stay lines
            head, _, trace = text.partition("\n")
            text, trace = head, "\n" + trace
        fields = record.__dict__
        extras = [f"{n}={bounded(fields[n])}" for n in FIELDS if fields.get(n)]
        line = escaped(f"{text} {' '.join(extras)}" if extras else text)[:LINE_CHARS]
        return line + trace


# One write(2) of at most this many bytes to a pipe is never split by another process's:
# what several workers sharing one stderr pipe (a container's log, ``| tee``) rely on.
PIPE_BUF = 4096
KEEP_CHARS = 64 * 1024  # kept on the loop at most before they are written, mid-turn


class TurnHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes the lines of one turn of the event loop together.

    A hub logs about 30 lines a document (a request's line, each state change's), often
    dozens in one turn of its loop (an inbox read moving 30 deliveries). Writing each with a
    system call of its own cost a third of a line's price. On a running loop, a line is kept
    until the end of the loop's current turn and written there with the others, in writes of
    whole lines of at most PIPE_BUF bytes; anywhere else (another thread, a command without a
    loop) it is written at once, after whatever the loop kept, so lines stay in order. A
    warning or an error is written at once too, with what was kept before it: the lines that
    explain a hang or a crash are not left waiting for a turn that may never end, and a turn
    that logs without end writes every KEEP_CHARS. What a hard kill (SIGKILL) can take is the
    INFO lines of the turn it interrupts: the state changes themselves are in the store's
    hash-chained log. An orderly exit writes everything (``logging.shutdown`` flushes). Like
    any handler, it never raises: a stream that fails is reported on stderr, once a failure.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._kept: list[str] = []
        self._kept_chars = 0
        self._due: asyncio.AbstractEventLoop | None = None  # the loop that will write them

    def emit(self, record: logging.LogRecord) -> None:
        # Called with the handler's lock held (Handler.handle).
        try:
            line = self.format(record) + self.terminator
        except Exception:  # noqa: BLE001 - logging's own rule: a bad record never raises
            self.handleError(record)
            return
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        self._kept.append(line)
        self._kept_chars += len(line)
        if loop is None or record.levelno >= logging.WARNING or self._kept_chars >= KEEP_CHARS:
            self.flush()
        elif self._due is not loop:  # not already due on this loop (or due on one now gone)
            self._due = loop
            loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write what is kept, in writes of whole lines, and flush the stream."""
        with self.lock:  # type: ignore[union-attr]
            self._due = None
            kept, self._kept, self._kept_chars = self._kept, [], 0
            try:
                for piece in _pieces(kept):
                    self.stream.write(piece)
                super().flush()
            except Exception as exc:  # noqa: BLE001 - as StreamHandler.emit: never raise
                _report(exc, len(kept))


def _pieces(lines: list[str]) -> Iterator[str]:
    """``lines`` joined into pieces of at most PIPE_BUF bytes in UTF-8 (a longer line alone)."""
    piece: list[str] = []
    size = 0
    for line in lines:
        n = len(line) if line.isascii() else len(line.encode())
        if piece and size + n > PIPE_BUF:
            yield "".join(piece)
            piece, size = [], 0
        piece.append(line)
        size += n
    if piece:
        yield "".join(piece)


def _report(exc: Exception, lines: int) -> None:
    """A failed write, told on stderr as logging.Handler.handleError tells one (not through
    logging, which would come back here)."""
    if not logging.raiseExceptions:
        return
    with contextlib.suppress(Exception):
        sys.stderr.write(f"--- Logging error: {lines} lines not written: {exc!r}\n")


def configure(fmt: str = "text", level: int = logging.INFO) -> None:
    """Send every Axis log line to stderr in ``fmt`` ("text" or "json"), the lines of one
    turn of the event loop written together (:class:`TurnHandler`)."""
    # Fields no format of ours prints, which the logging module would gather for every
    # record (the caller's file and line walk the stack): the logging HOWTO's "Optimization".
    # For the whole process: stack_info=True then prints no stack (nothing of ours asks).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = TurnHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
