"""`bids_per_minute`: each auction's current one-minute window of accepted bids (agents/bid_rate.py).

Values are `{"minute": M, "count": N}` JSON; a key holds only its newest window.
"""

from __future__ import annotations

import orjson

from agents.bid_rate import BidRate
from app.errors import InvalidMessage, InvalidReason
from app.topics.spec import BID_RATE_CHANGELOG
from tables import Table


def encode_rate(rate: BidRate) -> bytes:
    return orjson.dumps({"minute": rate.minute, "count": rate.count})


def decode_rate(raw: bytes) -> BidRate:
    try:
        doc = orjson.loads(raw)
        return BidRate(int(doc["minute"]), int(doc["count"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InvalidMessage(
            InvalidReason.INVALID_VALUE, f"stored bid rate is not {{minute, count}}: {exc}"
        ) from exc


BID_RATE = Table(
    "bids_per_minute",
    BID_RATE_CHANGELOG,
    encode_rate,
    decode_rate,
    "Accepted bids per auction in its current minute (feeds the hot-auctions set).",
)
