"""The HighestBid projection: what it shows and that redelivery changes nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from app.domain.auction import AuctionStatus
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
from app.domain.highest_bid import HighestBid, apply

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CLOSES = T0 + timedelta(hours=1)
A = "a-1"


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


OPENED = AuctionOpened(A, 1, "e1", "c-open", at(0), "seller", 1000, 100, "EUR", CLOSES)
ALICE = BidAccepted(A, 2, "e2", "c-alice", at(1), "alice", 1000, "EUR")
TOO_LOW = BidRejected(A, 3, "e3", "c-low", at(2), "bob", 1050, "EUR", BidRejectionReason.TOO_LOW)
BOB = BidAccepted(A, 4, "e4", "c-bob", at(3), "bob", 1200, "EUR")
CLOSED = AuctionClosed(A, 5, "e5", "c-close", at(4), "bob", 1200, CloseReason.EXPLICIT)


def project(events: list[Event], view: HighestBid | None = None) -> HighestBid:
    for event in events:
        view = apply(view, event)
    assert view is not None
    return view


def test_the_first_event_creates_the_view() -> None:
    view = apply(None, OPENED)

    assert view == HighestBid(
        A, AuctionStatus.OPEN, currency="EUR", closes_at=CLOSES, seq=1, updated_at=at(0)
    )


def test_an_accepted_bid_becomes_the_highest_and_remembers_its_command() -> None:
    view = project([OPENED, ALICE, BOB])

    assert (view.highest_bid, view.highest_bidder, view.bid_command_id) == (1200, "bob", "c-bob")
    assert (view.bid_count, view.seq, view.updated_at) == (2, 4, at(3))


@pytest.mark.parametrize(
    "rejection",
    [
        TOO_LOW,
        CommandRejected(
            A, 3, "e3", "c-x", at(2), "OpenAuction", CommandRejectionReason.ALREADY_EXISTS
        ),
    ],
    ids=["bid-rejected", "command-rejected"],
)
def test_rejections_only_advance_seq(rejection: Event) -> None:
    before = project([OPENED, ALICE])

    after = apply(before, rejection)

    assert after == replace(before, seq=3)


def test_closing_records_winner_and_final_price() -> None:
    view = project([OPENED, ALICE, TOO_LOW, BOB, CLOSED])

    assert view.status is AuctionStatus.CLOSED
    assert (view.winner_id, view.final_price, view.seq, view.updated_at) == ("bob", 1200, 5, at(4))


def test_a_redelivered_event_returns_the_view_unchanged() -> None:
    view = project([OPENED, ALICE])

    assert apply(view, ALICE) is view


def test_an_old_event_delivered_after_newer_ones_is_ignored() -> None:
    view = project([OPENED, ALICE, BOB])

    assert apply(view, ALICE) is view
    assert apply(view, OPENED) is view


def test_a_bid_on_an_unknown_auction_projects_to_status_none_with_its_seq() -> None:
    rejected = BidRejected(
        "a-9", 1, "e", "c", T0, "bob", 5, "EUR", BidRejectionReason.UNKNOWN_AUCTION
    )

    view = apply(None, rejected)

    assert (view.auction_id, view.status, view.seq, view.highest_bid) == ("a-9", "none", 1, None)


def test_apply_refuses_an_event_of_another_auction() -> None:
    with pytest.raises(ValueError, match="a-2"):
        apply(apply(None, OPENED), BidAccepted("a-2", 2, "e", "c", T0, "x", 1, "EUR"))


def test_to_json_dict_uses_plain_json_types_and_z_timestamps() -> None:
    body = project([OPENED, ALICE]).to_json_dict()

    assert body == {
        "auction_id": A,
        "status": "open",
        "highest_bid": 1000,
        "highest_bidder": "alice",
        "bid_command_id": "c-alice",
        "currency": "EUR",
        "closes_at": "2024-05-01T13:00:00Z",
        "seq": 2,
        "updated_at": "2024-05-01T12:01:00Z",
        "bid_count": 1,
        "winner_id": None,
        "final_price": None,
    }
    assert type(body["status"]) is str


def test_to_json_dict_of_an_empty_view_has_nulls() -> None:
    body = HighestBid.empty(A).to_json_dict()

    assert (body["status"], body["seq"], body["highest_bid"], body["closes_at"]) == (
        "none",
        0,
        None,
        None,
    )
