"""The simulator's bookkeeping stays bounded however long the run."""

from __future__ import annotations

import pytest

from nodes.sim import runner
from nodes.sim.runner import Tally


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
