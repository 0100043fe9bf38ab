"""The delivery lifecycle table, checked exhaustively: no server, no database, no clock."""

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

# The contract (SPEC §5), written out again by hand so that a silent edit of the table shows up.
EXPECTED = {
    (S.QUEUED, E.FETCHED): S.DELIVERED,
    (S.QUEUED, E.PUSHED): S.DELIVERED,
    (S.QUEUED, E.ACKED): S.ACKNOWLEDGED,
    (S.QUEUED, E.GAVE_UP): S.FAILED,
    (S.QUEUED, E.RECALLED): S.RECALLED,
    (S.DELIVERED, E.FETCHED): S.DELIVERED,
    (S.DELIVERED, E.PUSHED): S.DELIVERED,
    (S.DELIVERED, E.ACKED): S.ACKNOWLEDGED,
    (S.DELIVERED, E.GAVE_UP): S.DELIVERED,
    (S.ACKNOWLEDGED, E.FETCHED): S.ACKNOWLEDGED,
    (S.ACKNOWLEDGED, E.PUSHED): S.ACKNOWLEDGED,
    (S.ACKNOWLEDGED, E.ACKED): S.ACKNOWLEDGED,
    (S.ACKNOWLEDGED, E.GAVE_UP): S.ACKNOWLEDGED,
    (S.FAILED, E.FETCHED): S.DELIVERED,
    (S.FAILED, E.PUSHED): S.DELIVERED,
    (S.FAILED, E.ACKED): S.ACKNOWLEDGED,
    (S.FAILED, E.GAVE_UP): S.FAILED,
    (S.FAILED, E.RECALLED): S.RECALLED,
    (S.RECALLED, E.ACKED): S.RECALLED,
    (S.RECALLED, E.PUSHED): S.RECALLED,
    (S.RECALLED, E.GAVE_UP): S.RECALLED,
    (S.RECALLED, E.RECALLED): S.RECALLED,
}

# What a recall may not undo: once fetched or acknowledged, the recipient has it.
NOT_RECALLABLE = (S.DELIVERED, S.ACKNOWLEDGED)


def test_the_enums_spell_the_contract() -> None:
    assert [s.value for s in DeliveryState] == [
        "queued",
        "delivered",
        "acknowledged",
        "failed",
        "recalled",
    ]
    assert [e.value for e in DeliveryEvent] == ["fetched", "pushed", "acked", "gave-up", "recalled"]


def test_the_table_is_the_contract() -> None:
    assert TRANSITIONS == EXPECTED


def test_the_table_only_names_known_states_and_events() -> None:
    for (state, event), target in TRANSITIONS.items():
        assert isinstance(state, DeliveryState)
        assert isinstance(event, DeliveryEvent)
        assert isinstance(target, DeliveryState)
    assert len(LEGAL) + len(ILLEGAL) == len(DeliveryState) * len(DeliveryEvent)


@pytest.mark.parametrize(("pair", "target"), LEGAL, ids=lambda v: str(v))
def test_every_legal_pair_gives_its_target(
    pair: tuple[DeliveryState, DeliveryEvent], target: DeliveryState
) -> None:
    state, event = pair
    assert next_state(state, event) is target


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


def test_a_fetched_or_acknowledged_delivery_cannot_be_recalled() -> None:
    for state in NOT_RECALLABLE:
        with pytest.raises(InvalidTransition):
            next_state(state, E.RECALLED)


def test_a_recalled_delivery_cannot_be_fetched() -> None:
    with pytest.raises(InvalidTransition):
        next_state(S.RECALLED, E.FETCHED)


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


def test_a_failed_delivery_can_be_recalled() -> None:
    assert next_state(S.FAILED, E.RECALLED) is S.RECALLED


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
