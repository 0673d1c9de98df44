"""Commands: what a client asks an auction to do. Imperative names.

Commands are validated once, at the edge, by `app.domain.codec.decode_command`;
the constructors trust their arguments. Money is in integer minor units
(cents), instants are aware UTC datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, TypeAlias


@dataclass(frozen=True, slots=True)
class _CommandFields:
    command_id: str  # chosen by the client; re-sending the same id is a no-op
    issued_at: datetime
    auction_id: str  # also the Kafka message key


@dataclass(frozen=True, slots=True)
class OpenAuction(_CommandFields):
    TYPE: ClassVar[str] = "OpenAuction"

    seller_id: str
    starting_price: int
    min_increment: int
    currency: str  # ISO-4217 code, e.g. "EUR"
    closes_at: datetime


@dataclass(frozen=True, slots=True)
class PlaceBid(_CommandFields):
    TYPE: ClassVar[str] = "PlaceBid"

    bidder_id: str
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class CloseAuction(_CommandFields):
    TYPE: ClassVar[str] = "CloseAuction"


Command: TypeAlias = OpenAuction | PlaceBid | CloseAuction
