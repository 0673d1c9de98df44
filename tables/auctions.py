"""`auctions`: the auction aggregate (AuctionState as codec bytes), keyed by the auction id's UTF-8."""

from __future__ import annotations

from app.domain import decode_state, encode_state
from app.topics.spec import AUCTIONS_CHANGELOG
from tables import Table

AUCTIONS = Table(
    "auctions",
    AUCTIONS_CHANGELOG,
    encode_state,
    decode_state,
    "Auction aggregate state, written by the command handler.",
)
