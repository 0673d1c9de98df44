"""Events: what happened to an auction. Past-tense names, append-only facts.

Every event carries the same header: the auction it belongs to, its position
`seq` in that auction's history (1, 2, 3, ... without gaps, rejections
included), a deterministic `event_id`, the `command_id` that caused it and
when it was decided (`occurred_at`). `SCHEMA_VERSION` is the version written
on the wire; older versions are upgraded by `app.domain.upcasting`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import ClassVar, Final, NamedTuple, TypeAlias

CURRENT_SCHEMA_VERSION: Final = 2


class BidRejectionReason(StrEnum):
    UNKNOWN_AUCTION = "unknown_auction"
    AUCTION_CLOSED = "auction_closed"
    TOO_LOW = "too_low"
    WRONG_CURRENCY = "wrong_currency"
    SELLER_CANNOT_BID = "seller_cannot_bid"


class CommandRejectionReason(StrEnum):
    ALREADY_EXISTS = "already_exists"
    UNKNOWN_AUCTION = "unknown_auction"
    ALREADY_CLOSED = "already_closed"


class CloseReason(StrEnum):
    EXPLICIT = "explicit"  # a CloseAuction command
    EXPIRED = "expired"  # the first command decided at or after closes_at


class EventHeader(NamedTuple):
    """The common fields, in the events' positional order: `BidAccepted(*header, ...)`."""

    auction_id: str
    seq: int
    event_id: str
    command_id: str
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class _EventBase:
    SCHEMA_VERSION: ClassVar[int] = CURRENT_SCHEMA_VERSION

    auction_id: str
    seq: int
    event_id: str
    command_id: str
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class AuctionOpened(_EventBase):
    TYPE: ClassVar[str] = "AuctionOpened"

    seller_id: str
    starting_price: int
    min_increment: int
    currency: str
    closes_at: datetime


@dataclass(frozen=True, slots=True)
class BidAccepted(_EventBase):
    TYPE: ClassVar[str] = "BidAccepted"

    bidder_id: str
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class BidRejected(_EventBase):
    TYPE: ClassVar[str] = "BidRejected"

    bidder_id: str
    amount: int
    currency: str
    reason: BidRejectionReason


@dataclass(frozen=True, slots=True)
class AuctionClosed(_EventBase):
    TYPE: ClassVar[str] = "AuctionClosed"

    winner_id: str | None  # None (and price None) when nobody bid
    price: int | None
    reason: CloseReason


@dataclass(frozen=True, slots=True)
class CommandRejected(_EventBase):
    """An OpenAuction or CloseAuction that could not apply."""

    TYPE: ClassVar[str] = "CommandRejected"

    command_type: str  # the rejected command's TYPE, e.g. "CloseAuction"
    reason: CommandRejectionReason


Event: TypeAlias = AuctionOpened | BidAccepted | BidRejected | AuctionClosed | CommandRejected
