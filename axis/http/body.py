"""Reading a request body within bounds: its size, how long it may stall, how long in all."""

from __future__ import annotations

import asyncio

from aiohttp import web

from axis.errors import MalformedXml, TooLarge

XML_TYPES = frozenset({"application/xml", "text/xml"})
READ_CHUNK = 64 * 1024


async def read_body(
    request: web.Request,
    limit: int,
    idle_timeout_s: float = 30.0,
    timeout_s: float = 900.0,
    min_rate: float = 0.0,
    grace_s: float = 5.0,
) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes.

    A declared Content-Length over the limit is refused before anything is read, so a huge
    upload never reaches memory. A body that stops arriving for ``idle_timeout_s``, or takes
    longer than ``timeout_s`` in all, or that arrives slower than ``min_rate`` bytes a second
    on average once ``grace_s`` have passed, is refused as malformed-xml (400): a trickle
    must not hold an upload slot.
    """
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"the body is {request.content_length} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        # A body that stops arriving, or trickles in for ever, is cut off: slow clients
        # must not hold an upload slot (max_concurrent_uploads) indefinitely.
        async with asyncio.timeout(timeout_s):
            while True:
                async with asyncio.timeout(idle_timeout_s):
                    chunk = await request.content.read(READ_CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > limit:
                    raise TooLarge(f"the body passed the limit of {limit} bytes")
                chunks.append(chunk)
                elapsed = loop.time() - started
                if min_rate and elapsed > grace_s and size < min_rate * elapsed:
                    raise MalformedXml(
                        f"the body arrives at {size / elapsed:.0f} bytes a second, below the"
                        f" {min_rate:.0f} the hub waits for (min_body_bytes_per_s)"
                    )
    except TimeoutError as exc:
        raise MalformedXml(f"the body stopped arriving after {size} bytes (too slow)") from exc
    except ConnectionResetError as exc:
        # The client went away mid-upload: nobody will read the answer, but the log should
        # say what happened rather than report an internal error.
        raise MalformedXml(f"the body ended after {size} bytes: the connection was lost") from exc
    return b"".join(chunks)
