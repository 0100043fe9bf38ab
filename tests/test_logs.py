"""The hub's log handler: the lines of one turn of the event loop go out together, in order,
and none is held back past that turn (or at all, off the loop)."""

from __future__ import annotations

import asyncio
import io
import logging
import threading

from axis.host.logs import TextFormatter, TurnHandler


class Writes(io.StringIO):
    """A stream that counts the calls that wrote to it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def write(self, text: str) -> int:
        self.calls += 1
        return super().write(text)


def logger_to(handler: logging.Handler, name: str) -> logging.Logger:
    handler.setFormatter(TextFormatter())
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.disabled = False
    return logger


def test_one_turn_of_the_loop_is_one_write_after_the_turn() -> None:
    stream = Writes()
    log = logger_to(TurnHandler(stream), "axis.test.turn")

    async def turns() -> None:
        for n in range(30):
            log.info("delivered %d", n, extra={"event": "delivered", "log_seq": n})
        assert stream.calls == 0  # kept while the turn runs …
        await asyncio.sleep(0)
        assert stream.calls == 1  # … and written in one call at its end
        log.info("acknowledged")
        await asyncio.sleep(0)
        assert stream.calls == 2

    asyncio.run(turns())
    lines = stream.getvalue().splitlines()
    assert [line.split(" INFO ")[1] for line in lines[:2]] == [
        "axis.test.turn delivered 0 event=delivered",
        "axis.test.turn delivered 1 event=delivered log_seq=1",
    ]
    assert len(lines) == 31 and lines[-1].endswith("acknowledged")


def test_off_the_loop_a_line_is_written_at_once_after_what_the_loop_kept() -> None:
    stream = Writes()
    log = logger_to(TurnHandler(stream), "axis.test.thread")
    log.info("no loop here")
    assert stream.calls == 1

    async def mixed() -> None:
        log.info("on the loop, first")
        worker = threading.Thread(target=log.info, args=("from a thread, second",))
        worker.start()
        worker.join()
        assert stream.getvalue().splitlines()[-2:][0].endswith("on the loop, first")
        log.info("on the loop, third")
        await asyncio.sleep(0)

    asyncio.run(mixed())
    told = [line.rsplit(" ", 2)[-2:] for line in stream.getvalue().splitlines()]
    assert [" ".join(t) for t in told] == [
        "loop here",
        "loop, first",
        "thread, second",
        "loop, third",
    ]


def test_a_loop_that_ended_with_lines_due_does_not_strand_the_next_loops_lines() -> None:
    stream = Writes()
    log = logger_to(TurnHandler(stream), "axis.test.loops")
    loop = asyncio.new_event_loop()

    def last_words() -> None:
        log.info("kept when the loop stopped")
        loop.stop()  # the loop ends with this turn: the write due after it never runs

    loop.call_soon(last_words)
    loop.run_forever()
    loop.close()
    assert stream.calls == 0

    async def next_loop() -> None:
        log.info("said on the next loop")

    asyncio.run(next_loop())
    assert stream.getvalue().splitlines()[0].endswith("kept when the loop stopped")
    assert stream.getvalue().splitlines()[1].endswith("said on the next loop")
