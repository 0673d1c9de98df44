"""Bytes <-> domain objects: the wire format described in docs/schema.md.

Every message is one UTF-8 JSON object with a "type". Unknown fields are
ignored; a missing or ill-typed field raises InvalidMessage (and only that),
whose `reason` becomes the dead-letter code. Instants are ISO-8601 text with
an offset, normalised to UTC and written back with "Z". This module reads;
the encode_* functions it exports are written in `app.domain.writers`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Final

from app.domain.auction import AuctionState, AuctionStatus
from app.domain.builders import slot_builder
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
    EventHeader,
)
from app.domain.highest_bid import HighestBid
from app.domain.upcasting import upcast
from app.domain.wire import (
    CURRENCY_REGEX,
    ID_REGEX,
    MAX_AMOUNT,
    Fields,
    load_object,
    text_fields_pattern,
    utc_timestamp_or_none,
)
from app.domain.writers import (
    STATE_SCHEMA_VERSION,
    VIEW_SCHEMA_VERSION,
    encode_command,
    encode_event,
    encode_state,
    encode_view,
)
from app.errors import InvalidMessage, InvalidReason

__all__ = [
    "MAX_AMOUNT",
    "MAX_COMMAND_BYTES",
    "STATE_SCHEMA_VERSION",
    "VIEW_SCHEMA_VERSION",
    "decode_command",
    "decode_event",
    "decode_state",
    "decode_view",
    "encode_command",
    "encode_event",
    "encode_state",
    "encode_view",
]

MAX_COMMAND_BYTES: Final = 64 * 1024


# --- commands -------------------------------------------------------------


def _open_auction(f: Fields) -> OpenAuction:
    return OpenAuction(
        command_id=f.ident("command_id"),
        issued_at=f.timestamp("issued_at"),
        auction_id=f.ident("auction_id"),
        seller_id=f.ident("seller_id"),
        starting_price=f.amount("starting_price", minimum=0),
        min_increment=f.amount("min_increment"),
        currency=f.currency("currency"),
        closes_at=f.timestamp("closes_at"),
    )


def _place_bid(f: Fields) -> PlaceBid:
    return PlaceBid(
        command_id=f.ident("command_id"),
        issued_at=f.timestamp("issued_at"),
        auction_id=f.ident("auction_id"),
        bidder_id=f.ident("bidder_id"),
        amount=f.amount("amount"),
        currency=f.currency("currency"),
    )


def _close_auction(f: Fields) -> CloseAuction:
    return CloseAuction(
        command_id=f.ident("command_id"),
        issued_at=f.timestamp("issued_at"),
        auction_id=f.ident("auction_id"),
    )


_COMMAND_READERS: Final[Mapping[str, Callable[[Fields], Command]]] = {
    OpenAuction.TYPE: _open_auction,
    PlaceBid.TYPE: _place_bid,
    CloseAuction.TYPE: _close_auction,
}

# The common case, a well-formed command, read in one pass: every text field is checked by
# one regex over the fields joined by spaces (no id or currency holds one). A quick reader
# returns None for anything it does not accept; the checked reader above then decides, and
# names the defect when there is one. So a quick reader may refuse more, never accept more.
_new_open_auction: Final = slot_builder(OpenAuction)  # faster constructors, same objects
_new_place_bid: Final = slot_builder(PlaceBid)
_new_close_auction: Final = slot_builder(CloseAuction)
_THREE_IDS_AND_A_CURRENCY: Final = text_fields_pattern(ID_REGEX, ID_REGEX, ID_REGEX, CURRENCY_REGEX)
_TWO_IDS: Final = text_fields_pattern(ID_REGEX, ID_REGEX)


def _quick_open_auction(data: dict[str, object]) -> OpenAuction | None:
    get = data.get
    command_id, auction_id, seller_id = get("command_id"), get("auction_id"), get("seller_id")
    starting_price, min_increment, currency = (
        get("starting_price"),
        get("min_increment"),
        get("currency"),
    )
    issued_at, closes_at = get("issued_at"), get("closes_at")
    if not (
        type(command_id) is str
        and type(auction_id) is str
        and type(seller_id) is str
        and type(currency) is str
        and type(starting_price) is int
        and 0 <= starting_price <= MAX_AMOUNT
        and type(min_increment) is int
        and 1 <= min_increment <= MAX_AMOUNT
        and type(issued_at) is str
        and type(closes_at) is str
        and _THREE_IDS_AND_A_CURRENCY.fullmatch(f"{command_id} {auction_id} {seller_id} {currency}")
    ):
        return None
    issued, closes = utc_timestamp_or_none(issued_at), utc_timestamp_or_none(closes_at)
    if issued is None or closes is None:
        return None
    return _new_open_auction(
        command_id, issued, auction_id, seller_id, starting_price, min_increment, currency, closes
    )


def _quick_place_bid(data: dict[str, object]) -> PlaceBid | None:
    get = data.get
    command_id, auction_id, bidder_id = get("command_id"), get("auction_id"), get("bidder_id")
    amount, currency, issued_at = get("amount"), get("currency"), get("issued_at")
    if not (
        type(command_id) is str
        and type(auction_id) is str
        and type(bidder_id) is str
        and type(currency) is str
        and type(amount) is int
        and 1 <= amount <= MAX_AMOUNT
        and type(issued_at) is str
        and _THREE_IDS_AND_A_CURRENCY.fullmatch(f"{command_id} {auction_id} {bidder_id} {currency}")
    ):
        return None
    issued = utc_timestamp_or_none(issued_at)
    if issued is None:
        return None
    return _new_place_bid(command_id, issued, auction_id, bidder_id, amount, currency)


def _quick_close_auction(data: dict[str, object]) -> CloseAuction | None:
    command_id, auction_id, issued_at = (
        data.get("command_id"),
        data.get("auction_id"),
        data.get("issued_at"),
    )
    if not (
        type(command_id) is str
        and type(auction_id) is str
        and type(issued_at) is str
        and _TWO_IDS.fullmatch(f"{command_id} {auction_id}")
    ):
        return None
    issued = utc_timestamp_or_none(issued_at)
    return None if issued is None else _new_close_auction(command_id, issued, auction_id)


_QUICK_COMMAND_READERS: Final[Mapping[str, Callable[[dict[str, object]], Command | None]]] = {
    OpenAuction.TYPE: _quick_open_auction,
    PlaceBid.TYPE: _quick_place_bid,
    CloseAuction.TYPE: _quick_close_auction,
}


def decode_command(raw: bytes) -> Command:
    """The command in `raw`; raises InvalidMessage (only) when there is none."""
    if isinstance(raw, bytes | bytearray) and len(raw) > MAX_COMMAND_BYTES:
        raise InvalidMessage(
            InvalidReason.TOO_LARGE,
            f"the command is {len(raw)} bytes; commands are limited to {MAX_COMMAND_BYTES}",
        )
    data = load_object(raw, "command")
    kind = data.get("type")
    if type(kind) is str and kind in _QUICK_COMMAND_READERS:
        command = _QUICK_COMMAND_READERS[kind](data)
        if command is not None:
            return command
    return _read_command(Fields(data))


def _read_command(f: Fields) -> Command:
    kind = f.text("type")
    reader = _COMMAND_READERS.get(kind)
    if reader is None:
        raise InvalidMessage(
            InvalidReason.UNKNOWN_COMMAND_TYPE,
            f'"type" must be one of {", ".join(_COMMAND_READERS)}, got {kind!r}',
            "type",
        )
    return reader(f)


# --- events ---------------------------------------------------------------


def _header(f: Fields) -> EventHeader:
    return EventHeader(
        auction_id=f.ident("auction_id"),
        seq=f.counter("seq", minimum=1),
        event_id=f.ident("event_id"),
        command_id=f.ident("command_id"),
        occurred_at=f.timestamp("occurred_at"),
    )


def _auction_opened(f: Fields) -> AuctionOpened:
    return AuctionOpened(
        *_header(f),
        seller_id=f.ident("seller_id"),
        starting_price=f.amount("starting_price", minimum=0),
        min_increment=f.amount("min_increment", minimum=0),
        currency=f.currency("currency"),
        closes_at=f.timestamp("closes_at"),
    )


def _bid_accepted(f: Fields) -> BidAccepted:
    return BidAccepted(
        *_header(f),
        bidder_id=f.ident("bidder_id"),
        amount=f.amount("amount", minimum=0),
        currency=f.currency("currency"),
    )


def _bid_rejected(f: Fields) -> BidRejected:
    return BidRejected(
        *_header(f),
        bidder_id=f.ident("bidder_id"),
        amount=f.amount("amount", minimum=0),
        currency=f.currency("currency"),
        reason=f.choice("reason", BidRejectionReason),
    )


def _auction_closed(f: Fields) -> AuctionClosed:
    event = AuctionClosed(
        *_header(f),
        winner_id=f.optional_ident("winner_id"),
        price=f.optional_amount("price"),
        reason=f.choice("reason", CloseReason),
    )
    if (event.winner_id is None) != (event.price is None):
        raise InvalidMessage(
            InvalidReason.INVALID_VALUE,
            '"winner_id" and "price" must both be null (no bids) or both be set',
            "price",
        )
    return event


class _CommandType(StrEnum):
    """The commands a CommandRejected may name."""

    OPEN_AUCTION = OpenAuction.TYPE
    PLACE_BID = PlaceBid.TYPE
    CLOSE_AUCTION = CloseAuction.TYPE


def _command_rejected(f: Fields) -> CommandRejected:
    return CommandRejected(
        *_header(f),
        command_type=f.choice("command_type", _CommandType).value,
        reason=f.choice("reason", CommandRejectionReason),
    )


_EVENT_READERS: Final[Mapping[str, Callable[[Fields], Event]]] = {
    AuctionOpened.TYPE: _auction_opened,
    BidAccepted.TYPE: _bid_accepted,
    BidRejected.TYPE: _bid_rejected,
    AuctionClosed.TYPE: _auction_closed,
    CommandRejected.TYPE: _command_rejected,
}


def decode_event(raw: bytes) -> Event:
    """The event in `raw`, upgraded to the current schema; raises InvalidMessage only."""
    f = Fields(load_object(raw, "event"))
    version = f.integer("schema_version")
    # Upcast before reading "type": a future version may rename types.
    f = Fields(upcast(f.data, version))
    kind = f.text("type")
    reader = _EVENT_READERS.get(kind)
    if reader is None:
        raise InvalidMessage(
            InvalidReason.UNKNOWN_EVENT_TYPE,
            f'"type" must be one of {", ".join(_EVENT_READERS)}, got {kind!r}',
            "type",
        )
    return reader(f)


# --- stored values (RocksDB tables) ---------------------------------------


def _check_layout(f: Fields, supported: int, what: str) -> None:
    version = f.integer("schema_version")
    if version != supported:
        raise InvalidMessage(
            InvalidReason.UNSUPPORTED_SCHEMA_VERSION,
            f"stored {what} has layout version {version}, this worker reads {supported}; "
            "rebuild the table from its source topic",
            "schema_version",
        )


def decode_state(raw: bytes) -> AuctionState:
    f = Fields(load_object(raw, "stored auction state"))
    _check_layout(f, STATE_SCHEMA_VERSION, "auction state")
    return AuctionState(
        auction_id=f.ident("auction_id"),
        version=f.counter("version", minimum=0),
        status=f.choice("status", AuctionStatus),
        seller_id=f.optional_ident("seller_id"),
        starting_price=f.amount("starting_price", minimum=0),
        min_increment=f.amount("min_increment", minimum=0),
        currency=f.optional_currency("currency"),
        closes_at=f.optional_timestamp("closes_at"),
        highest_bid=f.optional_amount("highest_bid"),
        highest_bidder=f.optional_ident("highest_bidder"),
        bid_count=f.counter("bid_count", minimum=0),
        recent_command_ids=f.ident_list("recent_command_ids"),
    )


def decode_view(raw: bytes) -> HighestBid:
    f = Fields(load_object(raw, "stored highest-bid view"))
    _check_layout(f, VIEW_SCHEMA_VERSION, "highest-bid view")
    return HighestBid(
        auction_id=f.ident("auction_id"),
        status=f.choice("status", AuctionStatus),
        highest_bid=f.optional_amount("highest_bid"),
        highest_bidder=f.optional_ident("highest_bidder"),
        bid_command_id=f.optional_ident("bid_command_id"),
        currency=f.optional_currency("currency"),
        closes_at=f.optional_timestamp("closes_at"),
        seq=f.counter("seq", minimum=0),
        updated_at=f.optional_timestamp("updated_at"),
        bid_count=f.counter("bid_count", minimum=0),
        winner_id=f.optional_ident("winner_id"),
        final_price=f.optional_amount("final_price"),
    )
