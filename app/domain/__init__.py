"""outbid's domain: commands, events, the auction aggregate, the highest-bid
projection and their wire format. Pure Python: no Faust or Kafka import.
"""

from app.domain.auction import (
    DEFAULT_MAX_RECENT,
    EVENT_ID_NAMESPACE,
    AuctionState,
    AuctionStatus,
    decide,
    event_id_for,
    evolve,
    fold,
    follow_recent,
    minimum_next_bid,
)
from app.domain.codec import (
    MAX_AMOUNT,
    MAX_COMMAND_BYTES,
    decode_command,
    decode_event,
    decode_state,
    decode_view,
    encode_command,
    encode_event,
    encode_state,
    encode_view,
)
from app.domain.commands import CloseAuction, Command, OpenAuction, PlaceBid
from app.domain.events import (
    CURRENT_SCHEMA_VERSION,
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
from app.domain.upcasting import upcast

__all__ = [
    "CURRENT_SCHEMA_VERSION",
    "DEFAULT_MAX_RECENT",
    "EVENT_ID_NAMESPACE",
    "MAX_AMOUNT",
    "MAX_COMMAND_BYTES",
    "AuctionClosed",
    "AuctionOpened",
    "AuctionState",
    "AuctionStatus",
    "BidAccepted",
    "BidRejected",
    "BidRejectionReason",
    "CloseAuction",
    "CloseReason",
    "Command",
    "CommandRejected",
    "CommandRejectionReason",
    "Event",
    "HighestBid",
    "OpenAuction",
    "PlaceBid",
    "apply",
    "decide",
    "decode_command",
    "decode_event",
    "decode_state",
    "decode_view",
    "encode_command",
    "encode_event",
    "encode_state",
    "encode_view",
    "event_id_for",
    "evolve",
    "fold",
    "follow_recent",
    "minimum_next_bid",
    "upcast",
]
