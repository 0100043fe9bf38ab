"""The hub's log handler: the lines of one turn of the event loop go out together, in order,
and none is held back past that turn (or at all, off the loop)."""

from __future__ import annotations

import asyncio
import io
import logging
import threading

import pytest

from axis.host.logs import PIPE_BUF, TextFormatter, TurnHandler


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


class Failing(Writes):
    """A stream whose flush fails (a full disk)."""

    def flush(self) -> None:
        self.calls += 1
        raise OSError(28, "No space left on device")


def test_a_failing_stream_never_raises_and_does_not_spin_the_loop(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stream = Failing()
    log = logger_to(TurnHandler(stream), "axis.test.failing")
    log.info("off the loop")  # would raise OSError into the caller

    async def turns() -> None:
        log.info("on the loop")
        for _ in range(20):
            await asyncio.sleep(0)

    asyncio.run(turns())
    log.handlers.clear()  # (or logging's shutdown at exit would try it once more)
    assert stream.calls == 4  # two lines written, two failed flushes: nothing more
    assert capsys.readouterr().err.count("--- Logging error: 1 lines not written") == 2


def test_a_warning_is_written_at_once_with_what_came_before() -> None:
    stream = Writes()
    log = logger_to(TurnHandler(stream), "axis.test.warning")

    async def turn() -> None:
        log.info("delivered")
        log.warning("the store is slow")
        assert stream.getvalue().splitlines()[-1].endswith("the store is slow")
        assert stream.calls == 1

    asyncio.run(turn())


def test_a_turn_is_written_in_whole_lines_of_at_most_pipe_buf_bytes() -> None:
    written: list[str] = []

    class Pieces(io.StringIO):
        def write(self, text: str) -> int:
            written.append(text)
            return len(text)

    log = logger_to(TurnHandler(Pieces()), "axis.test.pieces")

    async def turn() -> None:
        for n in range(100):
            log.info("Công văn %d %s", n, "đ" * 120)  # 2 bytes a character in UTF-8

    asyncio.run(turn())
    assert len(written) > 1
    assert all(len(piece.encode()) <= PIPE_BUF and piece.endswith("\n") for piece in written)
    lines = "".join(written).splitlines()
    assert [line.split("Công văn ")[1].split()[0] for line in lines] == [str(n) for n in range(100)]
