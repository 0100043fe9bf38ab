"""The delivery lifecycle: the lives the contract gives a delivery, walked through the table,
and the table's properties checked exhaustively. No server, no database, no clock."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from axis.core.lifecycle import (
    PENDING,
    PUSHED_STATE,
    RECALLABLE,
    TRANSITIONS,
    DeliveryEvent,
    DeliveryState,
    InvalidTransition,
    ends_pushing,
    next_state,
    status_event,
)

S, E = DeliveryState, DeliveryEvent

ALL_PAIRS = list(itertools.product(DeliveryState, DeliveryEvent))
LEGAL = sorted(TRANSITIONS.items())
ILLEGAL = [pair for pair in ALL_PAIRS if pair not in TRANSITIONS]

# The contract (SPEC §5), as the lives a delivery can have: each walk starts queued and
# says, after each event, the state it must be in (or INVALID: the hub refuses the move).
INVALID = None
Walk = list[tuple[DeliveryEvent, DeliveryState | None]]
WALKS: dict[str, Walk] = {
    "pulled: fetched, then acknowledged": [(E.FETCHED, S.DELIVERED), (E.ACKED, S.ACKNOWLEDGED)],
    "pushed with a 2xx, then acknowledged": [(E.PUSHED, S.DELIVERED), (E.ACKED, S.ACKNOWLEDGED)],
    "acknowledged before any fetch (status 01 from software that read it elsewhere)": [
        (E.ACKED, S.ACKNOWLEDGED)
    ],
    "fetches and acks repeated: each repeat changes nothing": [
        (E.FETCHED, S.DELIVERED), (E.FETCHED, S.DELIVERED), (E.ACKED, S.ACKNOWLEDGED),
        (E.ACKED, S.ACKNOWLEDGED), (E.FETCHED, S.ACKNOWLEDGED),
    ],
    "a push gives up, the package stays for pull, is fetched and acknowledged": [
        (E.GAVE_UP, S.FAILED), (E.GAVE_UP, S.FAILED), (E.FETCHED, S.DELIVERED),
        (E.ACKED, S.ACKNOWLEDGED),
    ],
    "a push gives up and the recipient acknowledges without fetching again": [
        (E.GAVE_UP, S.FAILED), (E.ACKED, S.ACKNOWLEDGED),
    ],
    "a push that gave up is pushed after all (a worker's late success)": [
        (E.GAVE_UP, S.FAILED), (E.PUSHED, S.DELIVERED),
    ],
    "a late push or give-up after the pull changes nothing": [
        (E.FETCHED, S.DELIVERED), (E.PUSHED, S.DELIVERED), (E.GAVE_UP, S.DELIVERED),
    ],
    "pushes and give-ups after the acknowledgement change nothing": [
        (E.ACKED, S.ACKNOWLEDGED), (E.PUSHED, S.ACKNOWLEDGED), (E.GAVE_UP, S.ACKNOWLEDGED),
    ],
    "recalled before the recipient fetched it: gone, and cannot be fetched": [
        (E.RECALLED, S.RECALLED), (E.FETCHED, INVALID),
    ],
    "recalled: a push in flight, a give-up, an ack or a second recall change nothing": [
        (E.RECALLED, S.RECALLED), (E.PUSHED, S.RECALLED), (E.GAVE_UP, S.RECALLED),
        (E.ACKED, S.RECALLED), (E.RECALLED, S.RECALLED),
    ],
    "a push that gave up delivered nothing, so a recall still takes it back": [
        (E.GAVE_UP, S.FAILED), (E.RECALLED, S.RECALLED),
    ],
    "fetched: a recall comes too late (the recipient answers 02 or 03 instead)": [
        (E.FETCHED, S.DELIVERED), (E.RECALLED, INVALID),
    ],
    "acknowledged: a recall comes too late": [(E.ACKED, S.ACKNOWLEDGED), (E.RECALLED, INVALID)],
}  # fmt: skip


def walk(steps: Walk) -> list[tuple[DeliveryState, DeliveryEvent]]:
    """Apply ``steps`` from queued; the (state, event) moves the table was asked for."""
    state, asked = S.QUEUED, []
    for event, expected in steps:
        asked.append((state, event))
        if expected is INVALID:
            with pytest.raises(InvalidTransition):
                next_state(state, event)
            continue  # a refused move leaves the delivery where it was
        state = next_state(state, event)
        assert state is expected, f"{event} gave {state}, the contract says {expected}"
    return asked


@pytest.mark.parametrize("name", WALKS)
def test_a_delivery_lives_as_the_contract_says(name: str) -> None:
    walk(WALKS[name])


def test_every_move_of_the_table_is_one_the_contract_asks_for() -> None:
    """No row of the table that no walk of the contract needs, and every walk reaches only
    states that a queued delivery can reach."""
    asked = {move for steps in WALKS.values() for move in walk(steps)}
    assert set(TRANSITIONS) <= asked, f"rows no walk needs: {set(TRANSITIONS) - asked}"
    reachable = {S.QUEUED} | set(TRANSITIONS.values())
    assert {state for state, _ in asked} <= reachable


def test_the_enums_spell_the_contract() -> None:
    assert [s.value for s in DeliveryState] == [
        "queued",
        "delivered",
        "acknowledged",
        "failed",
        "recalled",
    ]
    assert [e.value for e in DeliveryEvent] == ["fetched", "pushed", "acked", "gave-up", "recalled"]


def test_the_table_only_names_known_states_and_events() -> None:
    for (state, event), target in TRANSITIONS.items():
        assert isinstance(state, DeliveryState)
        assert isinstance(event, DeliveryEvent)
        assert isinstance(target, DeliveryState)
    assert len(LEGAL) + len(ILLEGAL) == len(DeliveryState) * len(DeliveryEvent)


@pytest.mark.parametrize("pair", ILLEGAL, ids=lambda v: f"{v[0]}-{v[1]}")
def test_every_other_pair_raises_invalid_transition(
    pair: tuple[DeliveryState, DeliveryEvent],
) -> None:
    state, event = pair
    with pytest.raises(InvalidTransition) as caught:
        next_state(state, event)
    assert caught.value.state is state
    assert caught.value.event is event
    assert str(state) in str(caught.value) and str(event) in str(caught.value)
    # The KeyError of the table lookup is an implementation detail, hidden from callers.
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_invalid_transition_is_an_exception_with_its_fields() -> None:
    err = InvalidTransition(S.RECALLED, E.ACKED)
    assert isinstance(err, Exception)
    assert (err.state, err.event) == (S.RECALLED, E.ACKED)
    assert "recalled" in str(err) and "acked" in str(err)


@pytest.mark.parametrize("event", [E.ACKED, E.FETCHED])
@pytest.mark.parametrize("state", list(DeliveryState))
def test_repeating_ack_or_fetch_changes_nothing(state: DeliveryState, event: DeliveryEvent) -> None:
    """Acks and fetches are idempotent: once applied, applying them again is a no-op."""
    try:
        once = next_state(state, event)
    except InvalidTransition:
        return
    assert next_state(once, event) is once
    assert next_state(next_state(once, event), event) is once


@pytest.mark.parametrize("state", [S.QUEUED, S.DELIVERED, S.FAILED, S.ACKNOWLEDGED])
def test_ack_always_ends_in_acknowledged(state: DeliveryState) -> None:
    assert next_state(state, E.ACKED) is S.ACKNOWLEDGED


def test_acknowledged_and_recalled_are_absorbing() -> None:
    for terminal in (S.ACKNOWLEDGED, S.RECALLED):
        for event in DeliveryEvent:
            if (terminal, event) in TRANSITIONS:
                assert next_state(terminal, event) is terminal


def test_pending_is_the_inbox_states() -> None:
    # SPEC §5: a recipient sees a package until it acknowledges it; a recalled one is gone.
    assert PENDING == frozenset({S.QUEUED, S.DELIVERED, S.FAILED})
    assert isinstance(PENDING, frozenset)


def test_pending_states_are_exactly_those_a_recipient_can_still_fetch_and_ack() -> None:
    """A package is in the inbox iff the recipient can still fetch and ack it and has not yet."""
    in_inbox = {
        s
        for s in DeliveryState
        if next_state_or_none(s, E.FETCHED) is not None
        and next_state_or_none(s, E.ACKED) is S.ACKNOWLEDGED
        and s is not S.ACKNOWLEDGED
    }
    assert PENDING == in_inbox


def test_pending_is_left_only_by_ack_or_recall() -> None:
    for (state, event), target in TRANSITIONS.items():
        if state in PENDING and target not in PENDING:
            assert event in (E.ACKED, E.RECALLED), (state, event, target)
        if state not in PENDING:
            assert target not in PENDING, (state, event, target)


def next_state_or_none(state: DeliveryState, event: DeliveryEvent) -> DeliveryState | None:
    try:
        return next_state(state, event)
    except InvalidTransition:
        return None


@given(st.lists(st.sampled_from(list(DeliveryEvent)), max_size=30))
def test_random_event_sequences_apply_or_raise_invalid_transition(
    events: list[DeliveryEvent],
) -> None:
    state = S.QUEUED
    acknowledged = False
    for event in events:
        try:
            new = next_state(state, event)
        except InvalidTransition as exc:
            assert (exc.state, exc.event) == (state, event)
            assert (state, event) not in TRANSITIONS
            continue
        assert new is TRANSITIONS[(state, event)]
        state = new
        if state is S.ACKNOWLEDGED:
            acknowledged = True
        if acknowledged:
            assert state is S.ACKNOWLEDGED
        assert state in DeliveryState


@given(st.sampled_from(list(DeliveryState)), st.lists(st.sampled_from(list(DeliveryEvent))))
def test_acknowledged_is_never_left(start: DeliveryState, events: list[DeliveryEvent]) -> None:
    state = next_state_or_none(start, E.ACKED)
    if state is not S.ACKNOWLEDGED:  # a recalled delivery takes an ack as a no-op
        return
    for event in events:
        state = next_state_or_none(state, event) or state
        assert state is S.ACKNOWLEDGED


def test_a_recall_takes_back_exactly_what_the_table_recalls() -> None:
    recalled_by_the_table = {
        s for s in DeliveryState if s is not S.RECALLED and next_state_or_none(s, E.RECALLED)
    }
    assert RECALLABLE == recalled_by_the_table == {S.QUEUED, S.FAILED}


def test_only_a_queued_delivery_is_pushed_and_no_move_comes_back_to_queued() -> None:
    assert [s for s in DeliveryState if not ends_pushing(s)] == [PUSHED_STATE] == [S.QUEUED]
    assert S.QUEUED not in TRANSITIONS.values()


def test_status_01_is_an_acknowledgement_and_no_other_code_moves_a_delivery() -> None:
    assert status_event("01") is E.ACKED
    for code in ("02", "03", "04", "05", "06", "13", "15", "16", "99"):
        assert status_event(code) is None
