"""The simulator's bookkeeping stays bounded however long the run."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from nodes.client import VIETNAM
from nodes.sim import runner
from nodes.sim.country import seed_2020
from nodes.sim.runner import Tally
from nodes.sim.traffic import TrafficModel


def test_a_document_leaves_the_open_set_once_every_recipient_acknowledged() -> None:
    t = Tally()
    t.opened("p1", ("A", "B"))
    t.opened("p1", ("A", "B"))  # a resend answered 200: still one document
    assert t.lost == 1 and t.open["p1"][0] == {"A", "B"}
    assert t.acknowledged_by("p1", "A")
    assert not t.acknowledged_by("p1", "A"), "a second ack of the same delivery counts once"
    assert t.lost == 1 and t.open["p1"][0] == {"B"}
    assert t.acknowledged_by("p1", "B")
    assert t.open == {} and t.lost == 0
    assert t.acknowledged == 2 and len(t.latencies_ms) == 2
    assert not t.acknowledged_by("p9", "A"), "a package the run never sent is not counted"


def test_an_acknowledgement_before_the_sender_heard_the_answer_counts() -> None:
    """The hub committed a document, restarted before its answer reached the sender, and a
    recipient read and acknowledged it before the sender's resend got the 200: not lost."""
    t = Tally()
    assert not t.acknowledged_by("p1", "A")  # the sender has not heard yet
    t.confirm("p1|A")
    assert t.opened("p1", ("A", "B")) == 1
    assert t.acknowledged == 1 and t.open["p1"][0] == {"B"}
    assert t.acknowledged_by("p1", "B")
    assert t.lost == 0 and t.acknowledged == 2
    t.confirm("p2|A")
    assert t.opened("p2", ("A",)) == 1 and t.lost == 0 and "p2" not in t.open


def test_confirmed_acknowledgements_are_remembered_in_a_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runner, "DONE_WINDOW", 3)
    t = Tally()
    for n in range(5):
        t.confirm(f"p{n}|A")
    assert list(t.done) == ["p2|A", "p3|A", "p4|A"], "the oldest are forgotten first"


async def _answer_burst(post_s: float, answers: int = 40) -> int:
    """``answers`` statuses due at once, each taking ``post_s`` to post, while documents are
    still being sent: the most posted at the same time."""
    sim = runner.Simulation({}, TrafficModel(seed_2020(), seed=1), documents=0)
    past = datetime(2019, 12, 9, 8, 0, tzinfo=VIETNAM)
    for n in range(answers):
        sim._due.append((past, n, "000.00.00.G01", object(), ("03",)))  # type: ignore[arg-type]
    in_flight = most = 0

    async def post(client: object, edoc: object, code: str) -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(post_s)
        in_flight -= 1

    sim._status = post  # type: ignore[method-assign]
    sim.clients = {"000.00.00.G01": None}  # type: ignore[dict-item]
    answering = asyncio.create_task(sim._answering())
    while sim._due or in_flight:
        await asyncio.sleep(0.01)
    sim._receiving_done.set()
    await answering
    return most


async def test_answers_that_keep_up_go_a_few_at_a_time() -> None:
    # A burst the few clear within LATE_S is not a burst the hub has to queue documents behind.
    assert await _answer_burst(post_s=0.01) <= runner.FEW_ANSWERERS


async def test_answers_that_fall_behind_go_many_at_a_time() -> None:
    # 40 answers of 0.3 s, eight at a time, take 1.5 s: past LATE_S, more go at once.
    most = await _answer_burst(post_s=0.3)
    assert runner.FEW_ANSWERERS < most <= runner.ANSWERERS
