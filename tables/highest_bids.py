"""`highest_bids`: the highest-bid projection (HighestBid as codec bytes), keyed by auction id."""

from __future__ import annotations

from app.domain import decode_view, encode_view
from app.topics.spec import HIGHEST_BIDS_CHANGELOG
from tables import Table

HIGHEST_BIDS = Table(
    "highest_bids",
    HIGHEST_BIDS_CHANGELOG,
    encode_view,
    decode_view,
    "Highest bid per auction, folded from the decision events.",
)
