"""decide/evolve: every rule and reason code of the auction aggregate."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.auction import (
    EVENT_ID_NAMESPACE,
    AuctionState,
    AuctionStatus,
    decide,
    event_id_for,
    evolve,
    fold,
)
from app.domain.commands import CloseAuction, Command, OpenAuction, PlaceBid
from app.domain.events import (
    AuctionClosed,
    AuctionOpened,
    BidAccepted,
    BidRejected,
    BidRejectionReason,
    CloseReason,
    CommandRejected,
    CommandRejectionReason,
    Event,
)
from app.errors import OutbidError, SequenceError

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CLOSES = T0 + timedelta(hours=1)
AUCTION = "a-1"
SELLER = "seller"


def open_cmd(command_id: str = "open-1", **changes: object) -> OpenAuction:
    fields: dict[str, object] = {
        "command_id": command_id,
        "issued_at": T0,
        "auction_id": AUCTION,
        "seller_id": SELLER,
        "starting_price": 1000,
        "min_increment": 100,
        "currency": "EUR",
        "closes_at": CLOSES,
    }
    return OpenAuction(**(fields | changes))  # type: ignore[arg-type]


def bid(command_id: str, bidder: str, amount: int, currency: str = "EUR") -> PlaceBid:
    return PlaceBid(command_id, T0, AUCTION, bidder, amount, currency)


def close(command_id: str = "close-1") -> CloseAuction:
    return CloseAuction(command_id, T0, AUCTION)


def run(
    commands: list[Command], now: datetime = T0, state: AuctionState | None = None
) -> tuple[AuctionState, list[Event]]:
    """Decide and evolve each command in turn; return the final state and all events."""
    state = state or AuctionState.empty(AUCTION)
    history: list[Event] = []
    for command in commands:
        events = decide(state, command, now)
        for event in events:
            state = evolve(state, event)
        history.extend(events)
    return state, history


def opened() -> AuctionState:
    return run([open_cmd()])[0]


def only(events: list[Event]) -> Event:
    assert len(events) == 1, events
    return events[0]


# --- OpenAuction ------------------------------------------------------------


def test_open_on_a_new_auction_emits_auction_opened_with_the_terms() -> None:
    event = only(decide(AuctionState.empty(AUCTION), open_cmd(), T0))

    assert event == AuctionOpened(
        AUCTION,
        1,
        str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{AUCTION}/open-1/0")),
        "open-1",
        T0,
        seller_id=SELLER,
        starting_price=1000,
        min_increment=100,
        currency="EUR",
        closes_at=CLOSES,
    )


def test_auction_opened_sets_the_state_terms_and_status_open() -> None:
    state = opened()

    assert state.status is AuctionStatus.OPEN
    assert (state.seller_id, state.starting_price, state.min_increment) == (SELLER, 1000, 100)
    assert (state.currency, state.closes_at, state.version) == ("EUR", CLOSES, 1)
    assert (state.highest_bid, state.highest_bidder, state.bid_count) == (None, None, 0)


@pytest.mark.parametrize("first", [[open_cmd()], [open_cmd(), close()]], ids=["open", "closed"])
def test_open_on_an_existing_auction_is_rejected_as_already_exists(first: list[Command]) -> None:
    state, _ = run(first)

    event = only(decide(state, open_cmd("open-2"), T0))

    assert isinstance(event, CommandRejected)
    assert (event.command_type, event.reason) == ("OpenAuction", "already_exists")
    assert event.seq == state.version + 1


# --- PlaceBid ---------------------------------------------------------------


def test_bid_on_an_unknown_auction_is_rejected_and_still_takes_a_seq() -> None:
    event = only(decide(AuctionState.empty(AUCTION), bid("b-1", "alice", 5000), T0))

    assert isinstance(event, BidRejected)
    assert event.reason is BidRejectionReason.UNKNOWN_AUCTION
    assert event.seq == 1


def test_bid_on_a_closed_auction_is_rejected_as_auction_closed() -> None:
    state, _ = run([open_cmd(), close()])

    event = only(decide(state, bid("b-1", "alice", 5000), T0))

    assert isinstance(event, BidRejected)
    assert event.reason is BidRejectionReason.AUCTION_CLOSED


def test_bid_in_another_currency_is_rejected_as_wrong_currency() -> None:
    event = only(decide(opened(), bid("b-1", "alice", 5000, "USD"), T0))

    assert isinstance(event, BidRejected)
    assert event.reason is BidRejectionReason.WRONG_CURRENCY


def test_the_seller_cannot_bid_on_their_own_auction() -> None:
    event = only(decide(opened(), bid("b-1", SELLER, 5000), T0))

    assert isinstance(event, BidRejected)
    assert event.reason is BidRejectionReason.SELLER_CANNOT_BID


def test_first_bid_below_the_starting_price_is_too_low() -> None:
    event = only(decide(opened(), bid("b-1", "alice", 999), T0))

    assert isinstance(event, BidRejected)
    assert event.reason is BidRejectionReason.TOO_LOW
    assert (event.bidder_id, event.amount, event.currency) == ("alice", 999, "EUR")


def test_first_bid_at_exactly_the_starting_price_is_accepted() -> None:
    event = only(decide(opened(), bid("b-1", "alice", 1000), T0))

    assert event == BidAccepted(
        AUCTION, 2, event.event_id, "b-1", T0, bidder_id="alice", amount=1000, currency="EUR"
    )


def test_later_bid_below_highest_plus_increment_is_too_low() -> None:
    state, _ = run([open_cmd(), bid("b-1", "alice", 1000)])

    event = only(decide(state, bid("b-2", "bob", 1099), T0))

    assert isinstance(event, BidRejected)
    assert event.reason is BidRejectionReason.TOO_LOW


def test_later_bid_at_exactly_highest_plus_increment_is_accepted_and_becomes_highest() -> None:
    state, events = run([open_cmd(), bid("b-1", "alice", 1000), bid("b-2", "bob", 1100)])

    assert isinstance(events[-1], BidAccepted)
    assert (state.highest_bid, state.highest_bidder, state.bid_count) == (1100, "bob", 2)


def test_rejected_bids_leave_highest_bid_and_bid_count_alone() -> None:
    state, _ = run([open_cmd(), bid("b-1", "alice", 1000), bid("b-2", "bob", 1000)])

    assert (state.highest_bid, state.highest_bidder, state.bid_count) == (1000, "alice", 1)
    assert state.version == 3


@pytest.mark.parametrize(
    ("setup", "command", "expected"),
    [
        # closed beats every other rule, even a wrong currency from the seller
        ([open_cmd(), close()], bid("x", SELLER, 1, "USD"), BidRejectionReason.AUCTION_CLOSED),
        # wrong currency is checked before the seller and the amount
        ([open_cmd()], bid("x", SELLER, 1, "USD"), BidRejectionReason.WRONG_CURRENCY),
        # the seller is checked before the amount
        ([open_cmd()], bid("x", SELLER, 1), BidRejectionReason.SELLER_CANNOT_BID),
    ],
    ids=["closed-first", "currency-before-seller", "seller-before-amount"],
)
def test_bid_rules_are_checked_in_the_documented_order(
    setup: list[Command], command: PlaceBid, expected: BidRejectionReason
) -> None:
    state, _ = run(setup)

    event = only(decide(state, command, T0))

    assert isinstance(event, BidRejected)
    assert event.reason is expected


# --- CloseAuction -----------------------------------------------------------


def test_close_on_an_unknown_auction_is_rejected_as_unknown_auction() -> None:
    event = only(decide(AuctionState.empty(AUCTION), close(), T0))

    assert isinstance(event, CommandRejected)
    assert (event.command_type, event.reason) == ("CloseAuction", "unknown_auction")
    assert event.reason is CommandRejectionReason.UNKNOWN_AUCTION


def test_close_on_a_closed_auction_is_rejected_as_already_closed() -> None:
    state, _ = run([open_cmd(), close()])

    event = only(decide(state, close("close-2"), T0))

    assert isinstance(event, CommandRejected)
    assert event.reason is CommandRejectionReason.ALREADY_CLOSED


def test_explicit_close_names_the_highest_bidder_as_winner() -> None:
    state, events = run([open_cmd(), bid("b-1", "alice", 1000), bid("b-2", "bob", 2000), close()])

    closed = events[-1]
    assert isinstance(closed, AuctionClosed)
    assert (closed.winner_id, closed.price, closed.reason) == ("bob", 2000, CloseReason.EXPLICIT)
    assert state.status is AuctionStatus.CLOSED


def test_explicit_close_without_bids_has_no_winner_and_no_price() -> None:
    _, events = run([open_cmd(), close()])

    closed = events[-1]
    assert isinstance(closed, AuctionClosed)
    assert (closed.winner_id, closed.price, closed.reason) == (None, None, "explicit")


# --- expiry: auto-close on the next command ----------------------------------


def test_bid_at_closes_at_first_closes_the_auction_as_expired_then_is_rejected() -> None:
    state, _ = run([open_cmd(), bid("b-1", "alice", 1500)])

    events = decide(state, bid("b-2", "bob", 9000), CLOSES)

    assert [type(e) for e in events] == [AuctionClosed, BidRejected]
    expiry, rejection = events
    assert isinstance(expiry, AuctionClosed)
    assert isinstance(rejection, BidRejected)
    assert (expiry.winner_id, expiry.price, expiry.reason) == ("alice", 1500, CloseReason.EXPIRED)
    assert rejection.reason is BidRejectionReason.AUCTION_CLOSED
    assert [e.seq for e in events] == [state.version + 1, state.version + 2]
    assert {e.command_id for e in events} == {"b-2"}


def test_bid_just_before_closes_at_is_still_accepted() -> None:
    event = only(decide(opened(), bid("b-1", "alice", 1500), CLOSES - timedelta(microseconds=1)))

    assert isinstance(event, BidAccepted)


def test_close_after_closes_at_yields_only_the_expired_close() -> None:
    event = only(decide(opened(), close(), CLOSES + timedelta(days=1)))

    assert isinstance(event, AuctionClosed)
    assert (event.reason, event.winner_id, event.price) == ("expired", None, None)


def test_open_on_an_expired_auction_closes_it_then_is_rejected_as_already_exists() -> None:
    events = decide(opened(), open_cmd("open-2"), CLOSES)

    assert [type(e) for e in events] == [AuctionClosed, CommandRejected]


def test_expiry_happens_only_once() -> None:
    later = CLOSES + timedelta(minutes=5)
    state, _ = run([open_cmd()])
    state, _ = run([bid("b-1", "alice", 1500)], now=later, state=state)

    events = decide(state, bid("b-2", "bob", 1600), later)

    assert [type(e) for e in events] == [BidRejected]


def test_the_expired_state_folds_to_closed_with_contiguous_seqs() -> None:
    state, events = run([open_cmd(), bid("b-1", "alice", 1500)])
    late, more = run([bid("b-2", "bob", 9000)], now=CLOSES, state=state)

    assert late.status is AuctionStatus.CLOSED
    assert [e.seq for e in events + more] == [1, 2, 3, 4]
    assert late.highest_bid == 1500


# --- duplicates and recent command ids ---------------------------------------


@pytest.mark.parametrize(
    "command",
    [open_cmd(), bid("b-1", "alice", 1500), bid("b-low", "alice", 1), close()],
    ids=["open", "accepted-bid", "rejected-bid", "close"],
)
def test_a_resent_command_yields_no_events(command: Command) -> None:
    setup = [open_cmd()] if command.command_id != "open-1" else []
    state, _ = run([*setup, command])

    assert decide(state, command, T0) == []


def test_a_resent_command_is_ignored_even_with_other_content_or_after_expiry() -> None:
    state, _ = run([open_cmd(), bid("b-1", "alice", 1500)])

    assert decide(state, bid("b-1", "bob", 99_999), CLOSES + timedelta(days=1)) == []


def test_one_command_with_two_events_is_remembered_once() -> None:
    state, _ = run([open_cmd()])
    state, _ = run([bid("b-1", "alice", 1500)], now=CLOSES, state=state)

    assert state.recent_command_ids == ("open-1", "b-1")
    assert state.version == 3


def test_recent_command_ids_keep_only_the_newest_in_order() -> None:
    state = AuctionState.empty(AUCTION)
    commands: list[Command] = [
        open_cmd(),
        *(bid(f"b-{i}", "alice", 1000 + 100 * i) for i in range(4)),
    ]
    for command in commands:
        for event in decide(state, command, T0, max_recent=3):
            state = evolve(state, event, max_recent=3)

    assert state.recent_command_ids == ("b-1", "b-2", "b-3")


def test_a_command_forgotten_beyond_max_recent_is_decided_again() -> None:
    state = AuctionState.empty(AUCTION)
    commands: list[Command] = [open_cmd(), bid("b-1", "alice", 1000), bid("b-2", "bob", 1100)]
    for command in commands:
        for event in decide(state, command, T0, max_recent=2):
            state = evolve(state, event, max_recent=2)

    assert "open-1" not in state.recent_command_ids
    assert [type(e) for e in decide(state, open_cmd(), T0, max_recent=2)] == [CommandRejected]


def test_max_recent_below_one_is_refused() -> None:
    event = only(decide(AuctionState.empty(AUCTION), open_cmd(), T0))

    with pytest.raises(ValueError, match="max_recent"):
        evolve(AuctionState.empty(AUCTION), event, max_recent=0)


# --- seq, ids, headers -------------------------------------------------------


def test_seqs_are_contiguous_across_accepts_rejections_and_closes() -> None:
    state, events = run(
        [
            open_cmd(),
            bid("b-1", "x", 1),
            bid("b-2", "alice", 1000),
            close(),
            bid("b-3", "bob", 5000),
        ]
    )

    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert state.version == 5


def test_deciding_the_same_command_from_the_same_state_gives_identical_events() -> None:
    state = opened()

    first = decide(state, bid("b-1", "alice", 1500), CLOSES)
    again = decide(state, bid("b-1", "alice", 1500), CLOSES)

    assert first == again
    assert [e.event_id for e in first] == [
        str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{AUCTION}/b-1/{index}")) for index in (0, 1)
    ]


def test_different_commands_get_different_event_ids() -> None:
    state = opened()

    one = only(decide(state, bid("b-1", "alice", 1500), T0))
    two = only(decide(state, bid("b-2", "alice", 1500), T0))

    assert one.event_id != two.event_id


def test_events_carry_the_command_id_and_the_decision_time() -> None:
    now = T0 + timedelta(minutes=7)

    event = only(decide(opened(), bid("b-9", "alice", 1500), now))

    assert (event.command_id, event.occurred_at, event.auction_id) == ("b-9", now, AUCTION)


def test_decide_refuses_a_naive_now() -> None:
    with pytest.raises(ValueError, match="aware"):
        decide(opened(), close(), datetime(2024, 5, 1))  # noqa: DTZ001 - the point of the test


def test_decide_refuses_a_command_for_another_auction() -> None:
    with pytest.raises(ValueError, match="a-2"):
        decide(opened(), CloseAuction("c", T0, "a-2"), T0)


# --- evolve and fold ---------------------------------------------------------


def test_evolve_sets_version_to_the_event_seq_and_records_the_command() -> None:
    state = opened()

    assert (state.version, state.recent_command_ids) == (1, ("open-1",))


@pytest.mark.parametrize("seq", [1, 3], ids=["duplicate", "gap"])
def test_evolve_refuses_an_event_that_does_not_follow_the_state(seq: int) -> None:
    state = opened()
    event = only(decide(state, close(), T0))
    wrong = AuctionClosed(AUCTION, seq, event.event_id, "c", T0, None, None, CloseReason.EXPLICIT)

    with pytest.raises(SequenceError) as caught:
        evolve(state, wrong)

    assert isinstance(caught.value, OutbidError)
    assert not caught.value.retriable
    assert (caught.value.version, caught.value.seq) == (1, seq)
    assert "rebuild" in str(caught.value)


def test_evolve_refuses_an_event_of_another_auction() -> None:
    other = AuctionClosed("a-2", 2, "e", "c", T0, None, None, CloseReason.EXPLICIT)

    with pytest.raises(ValueError, match="a-2"):
        evolve(opened(), other)


def test_fold_of_nothing_is_the_empty_state() -> None:
    assert fold([], AUCTION) == AuctionState.empty(AUCTION)


def test_fold_equals_evolving_one_event_at_a_time() -> None:
    state, events = run([open_cmd(), bid("b-1", "alice", 1000), bid("b-2", "bob", 1200), close()])

    assert fold(events, AUCTION) == state


def test_importing_the_domain_loads_no_faust_or_kafka_module() -> None:
    probe = (
        "import sys, app.domain; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'faust', 'mode', 'aiokafka', 'confluent_kafka', 'kafka', 'rocksdict'}))"
    )
    root = Path(__file__).parents[3]

    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "[]"


@given(
    st.text(min_size=1, max_size=40),
    st.text(min_size=1, max_size=40),
    st.integers(min_value=0, max_value=5),
)
def test_event_ids_are_exactly_uuid5_of_the_documented_name(
    auction_id: str, command_id: str, index: int
) -> None:
    expected = uuid.uuid5(EVENT_ID_NAMESPACE, f"{auction_id}/{command_id}/{index}")
    assert event_id_for(auction_id, command_id, index) == str(expected)
