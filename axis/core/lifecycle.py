"""The delivery lifecycle, as data.

Theory of operation: a *delivery* is one (package, recipient) pair. It starts ``queued`` when
the hub commits the package, becomes ``delivered`` when the recipient fetches it or a push gets
a 2xx, and ``acknowledged`` when the recipient confirms it (an ack, or status 01). A push that
exhausts its retries leaves it ``failed`` (still in the inbox for pull); a recall that arrives
before the recipient fetched it makes it ``recalled`` (gone from the inbox). Every legal move
is one row of :data:`TRANSITIONS`; anything else raises :class:`InvalidTransition`. Repeating
a move that already happened (a second ack, a second fetch) is legal and changes nothing, which
is what makes acks and retries idempotent for clients.

Three more rules of the lifecycle live here, beside the table, so that no store writes them
again: a status code can be a lifecycle event (01, "đã đến", acknowledges: :func:`status_event`);
a recall takes back only what nobody fetched (:data:`RECALLABLE`); only a queued delivery is
pushed, and leaving queued ends the pushing (:func:`ends_pushing`).

This module knows no I/O: stores ask it what the next state is and persist the answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from axis.errors import AxisError


class DeliveryState(StrEnum):
    QUEUED = "queued"
    DELIVERED = "delivered"
    ACKNOWLEDGED = "acknowledged"
    FAILED = "failed"
    RECALLED = "recalled"


class DeliveryEvent(StrEnum):
    FETCHED = "fetched"
    PUSHED = "pushed"
    ACKED = "acked"
    GAVE_UP = "gave-up"
    RECALLED = "recalled"


class InvalidTransition(AxisError):
    """An event that the delivery's current state does not allow. Callers turn it into what
    it means to them (the hub: not-allowed); one that escapes them is a bug, hence a 500."""

    problem = "invalid-transition"

    def __init__(self, state: DeliveryState, event: DeliveryEvent) -> None:
        super().__init__(f"a {state} delivery cannot take the event {event!r}")
        self.state = state
        self.event = event


S, E = DeliveryState, DeliveryEvent

TRANSITIONS: dict[tuple[DeliveryState, DeliveryEvent], DeliveryState] = {
    (S.QUEUED, E.FETCHED): S.DELIVERED,
    (S.QUEUED, E.PUSHED): S.DELIVERED,
    (S.QUEUED, E.ACKED): S.ACKNOWLEDGED,
    (S.QUEUED, E.GAVE_UP): S.FAILED,
    (S.QUEUED, E.RECALLED): S.RECALLED,
    (S.DELIVERED, E.FETCHED): S.DELIVERED,
    (S.DELIVERED, E.PUSHED): S.DELIVERED,
    (S.DELIVERED, E.ACKED): S.ACKNOWLEDGED,
    # A push that gives up after the recipient pulled the package changes nothing.
    (S.DELIVERED, E.GAVE_UP): S.DELIVERED,
    (S.ACKNOWLEDGED, E.FETCHED): S.ACKNOWLEDGED,
    (S.ACKNOWLEDGED, E.PUSHED): S.ACKNOWLEDGED,
    (S.ACKNOWLEDGED, E.ACKED): S.ACKNOWLEDGED,
    (S.ACKNOWLEDGED, E.GAVE_UP): S.ACKNOWLEDGED,
    # A recipient may still pull a package whose push gave up, and confirm it.
    (S.FAILED, E.FETCHED): S.DELIVERED,
    (S.FAILED, E.PUSHED): S.DELIVERED,
    (S.FAILED, E.ACKED): S.ACKNOWLEDGED,
    (S.FAILED, E.GAVE_UP): S.FAILED,
    # A push that gave up has not been fetched: a recall still takes it back.
    (S.FAILED, E.RECALLED): S.RECALLED,
    # A recalled package is gone from the inbox and cannot be fetched (no FETCHED row); an
    # ack is a harmless no-op, and a push that was in flight when the recall landed, or that
    # gives up afterwards, changes nothing.
    (S.RECALLED, E.ACKED): S.RECALLED,
    (S.RECALLED, E.PUSHED): S.RECALLED,
    (S.RECALLED, E.GAVE_UP): S.RECALLED,
    (S.RECALLED, E.RECALLED): S.RECALLED,
}

#: States in which the package is still in the recipient's inbox.
PENDING: frozenset[DeliveryState] = frozenset({S.QUEUED, S.DELIVERED, S.FAILED})


#: States a recall still takes back: nobody has fetched the package (a push that gave up has
#: not delivered it either). From the others the recipient has it, and answers 02 or 03.
RECALLABLE: frozenset[DeliveryState] = frozenset({S.QUEUED, S.FAILED})

#: The one state in which a delivery is pushed (when its recipient has an endpoint).
PUSHED_STATE = S.QUEUED

#: Business status codes that are also lifecycle events: 01 "đã đến" says the recipient has
#: the package, which is what an acknowledgement says.
STATUS_EVENTS: Mapping[str, DeliveryEvent] = MappingProxyType({"01": E.ACKED})


def status_event(code: str) -> DeliveryEvent | None:
    """The lifecycle event a recipient's status ``code`` also is, if any."""
    return STATUS_EVENTS.get(code)


def ends_pushing(state: DeliveryState) -> bool:
    """Whether a delivery that moves into ``state`` is pushed no more (no next try, no lease):
    every state but queued, since a fetch, a push, an ack, a give-up or a recall all settle
    what a push was for."""
    return state is not PUSHED_STATE


def next_state(state: DeliveryState, event: DeliveryEvent) -> DeliveryState:
    """The state a delivery in ``state`` moves to on ``event``.

    Raises:
        InvalidTransition: the table has no such move.
    """
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransition(state, event) from None
