"""Attacks on the hub's logs (issue 16, class 8): a stranger's long paths must not grow the log
without bound, and nothing a client sends may forge a line of the text log."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator

import aiohttp
import pytest

from axis.host.logs import FIELD_CHARS, LINE_CHARS, JsonFormatter, TextFormatter
from axis.http import problems
from tests.conftest import LiveHub

G22, H41 = "000.00.00.G22", "000.00.00.H41"


def record(path: str) -> logging.LogRecord:
    made = logging.LogRecord("axis.access", logging.INFO, __file__, 1, "POST %s 404", (path,), None)
    made.path = path
    return made


def test_a_newline_in_a_path_forges_no_line_and_a_long_one_is_cut() -> None:
    forged = "/v1/x\n2026-12-03 12:00:00 INFO axis.access POST /v1/packages 201 agency=G22"
    line = TextFormatter().format(record(forged))
    assert "\n" not in line and "\\n2026-12-03" in line
    long = TextFormatter().format(record("/" + "a" * 100_000))
    assert len(long) <= LINE_CHARS
    as_json = json.loads(JsonFormatter().format(record("/" + "b" * 100_000)))
    assert len(as_json["path"]) < FIELD_CHARS + 20
    assert "\n" not in JsonFormatter().format(record(forged))


@pytest.fixture
def access_text() -> Iterator[io.StringIO]:
    written = io.StringIO()
    handler = logging.StreamHandler(written)
    handler.setFormatter(TextFormatter())
    logger = logging.getLogger("axis.access")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)  # (setLevel, not the attribute: it clears logging's cache)
    # Another test of this process may have silenced loggers (logs.configure, dictConfig).
    disabled, logger.disabled = logger.disabled, False
    silenced = logging.root.manager.disable
    logging.disable(logging.NOTSET)
    problems.STRANGER_LINES.reset()  # a fresh allowance for this test
    try:
        yield written
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.disabled = disabled
        logging.disable(silenced)


async def test_a_stranger_flooding_long_paths_writes_a_bounded_log(
    hub: LiveHub, access_text: io.StringIO
) -> None:
    started = time.perf_counter()
    async with aiohttp.ClientSession() as http:
        for n in range(600):
            url = f"{hub.running.url}/v1/{'x' * 4000}{n}%0Aforged"
            async with http.get(url, ssl=False) as answer:
                assert answer.status in (403, 404)
    seconds = time.perf_counter() - started
    written = access_text.getvalue()
    lines = written.splitlines()
    # At most the burst, then 20 lines a second, each of a bounded size.
    assert len(lines) <= 100 + 20 * seconds + 5, (len(lines), seconds)
    assert all(len(line) <= LINE_CHARS for line in lines)
    assert len(written) < 600 * 4000 / 5  # was 600 lines of 4 KB and more: now a fraction
    assert not any(line.startswith("forged") for line in lines)
    # An agency is logged as ever, and is told how many strangers' lines were dropped.
    await hub.client(G22).send([H41], "Vẫn được ghi nhật ký")
    tail = access_text.getvalue().splitlines()[-1]
    assert "agency=000.00.00.G22" in tail and "201" in tail
