"""The HighestBid projection: what the web API shows for one auction.

`apply` folds events into the view and ignores any event it has already seen
(seq <= view.seq), so redelivered or replayed events change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, assert_never

from app.domain.auction import AuctionStatus
from app.domain.builders import slot_builder
from app.domain.events import (
    AuctionClosed,
    AuctionOpened,
    BidAccepted,
    BidRejected,
    CommandRejected,
    Event,
)
from app.domain.wire import format_timestamp

JsonScalar = str | int | None


@dataclass(frozen=True, slots=True)
class HighestBid:
    auction_id: str
    status: AuctionStatus = AuctionStatus.NONE
    highest_bid: int | None = None
    highest_bidder: str | None = None
    bid_command_id: str | None = None  # the command that placed the highest bid
    currency: str | None = None
    closes_at: datetime | None = None
    seq: int = 0  # the last event applied
    updated_at: datetime | None = None  # occurred_at of the last event that changed the view
    bid_count: int = 0
    winner_id: str | None = None
    final_price: int | None = None

    @classmethod
    def empty(cls, auction_id: str) -> HighestBid:
        return cls(auction_id=auction_id)

    def to_json_dict(self) -> dict[str, JsonScalar]:
        """Plain JSON types for the web API; instants as ISO-8601 with "Z"."""
        return {
            "auction_id": self.auction_id,
            "status": self.status.value,
            "highest_bid": self.highest_bid,
            "highest_bidder": self.highest_bidder,
            "bid_command_id": self.bid_command_id,
            "currency": self.currency,
            "closes_at": _optional_timestamp(self.closes_at),
            "seq": self.seq,
            "updated_at": _optional_timestamp(self.updated_at),
            "bid_count": self.bid_count,
            "winner_id": self.winner_id,
            "final_price": self.final_price,
        }


def _optional_timestamp(moment: datetime | None) -> str | None:
    return None if moment is None else format_timestamp(moment)


# Built per event: the same object as HighestBid(...), in half the time (app.domain.builders).
_new_view: Final = slot_builder(HighestBid)


def apply(view: HighestBid | None, event: Event) -> HighestBid:
    """`view` with `event` applied; `view` itself when the event is not newer."""
    if view is None:
        view = HighestBid.empty(event.auction_id)
    elif event.auction_id != view.auction_id:
        msg = f"event for auction {event.auction_id!r} applied to the view of {view.auction_id!r}"
        raise ValueError(msg)
    if event.seq <= view.seq:
        return view
    # A new view per event, built positionally (dataclasses.replace() took 3x as long):
    # auction_id, status, highest_bid, highest_bidder, bid_command_id, currency, closes_at,
    # seq, updated_at, bid_count, winner_id, final_price.
    match event:
        case BidAccepted():
            return _new_view(
                view.auction_id,
                view.status,
                event.amount,  # highest_bid
                event.bidder_id,  # highest_bidder
                event.command_id,  # bid_command_id
                view.currency,
                view.closes_at,
                event.seq,
                event.occurred_at,  # updated_at
                view.bid_count + 1,
                view.winner_id,
                view.final_price,
            )
        case BidRejected() | CommandRejected():
            return _new_view(
                view.auction_id,
                view.status,
                view.highest_bid,
                view.highest_bidder,
                view.bid_command_id,
                view.currency,
                view.closes_at,
                event.seq,
                view.updated_at,  # unchanged: a rejection only moves seq
                view.bid_count,
                view.winner_id,
                view.final_price,
            )
        case AuctionOpened():
            return _new_view(
                view.auction_id,
                AuctionStatus.OPEN,
                view.highest_bid,
                view.highest_bidder,
                view.bid_command_id,
                event.currency,
                event.closes_at,
                event.seq,
                event.occurred_at,  # updated_at
                view.bid_count,
                view.winner_id,
                view.final_price,
            )
        case AuctionClosed():
            return _new_view(
                view.auction_id,
                AuctionStatus.CLOSED,
                view.highest_bid,
                view.highest_bidder,
                view.bid_command_id,
                view.currency,
                view.closes_at,
                event.seq,
                event.occurred_at,  # updated_at
                view.bid_count,
                event.winner_id,
                event.price,  # final_price
            )
        case _:
            assert_never(event)
