"""A reproducible sample auction stream, for the demo, tests and docs.

Each auction is opened, receives bids from a few bidders (some too low, some in the wrong
currency, one from the seller), and every third auction is closed explicitly.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta

from app.domain import CloseAuction, Command, OpenAuction, PlaceBid


def sample_commands(
    auctions: int = 50,
    bids_per_auction: int = 12,
    seed: int = 7,
    now: datetime | None = None,
    prefix: str = "A",
) -> Iterator[Command]:
    """Commands in a plausible arrival order: auctions interleave, each auction's own order holds."""
    rng = random.Random(seed)  # noqa: S311 - reproducible sample data, not security
    now = now or datetime.now().astimezone()
    per_auction: list[list[Command]] = []
    for a in range(1, auctions + 1):
        auction_id = f"{prefix}-{a}"
        seller = f"seller-{a % 7}"
        start = rng.choice([500, 1000, 2500])
        step = rng.choice([50, 100])
        cmds: list[Command] = [
            OpenAuction(
                command_id=f"{auction_id}-open",
                issued_at=now,
                auction_id=auction_id,
                seller_id=seller,
                starting_price=start,
                min_increment=step,
                currency="EUR",
                closes_at=now + timedelta(hours=1),
            )
        ]
        price = start
        for b in range(1, bids_per_auction + 1):
            bidder = rng.choice([f"bidder-{i}" for i in range(1, 9)] + [seller])
            roll = rng.random()
            amount = price - step if roll < 0.15 else price + step * rng.randint(1, 5)
            currency = "USD" if roll > 0.95 else "EUR"
            cmds.append(
                PlaceBid(
                    command_id=f"{auction_id}-bid-{b}",
                    issued_at=now,
                    auction_id=auction_id,
                    bidder_id=bidder,
                    amount=amount,
                    currency=currency,
                )
            )
            price = max(price, amount)
        if a % 3 == 0:
            cmds.append(
                CloseAuction(command_id=f"{auction_id}-close", issued_at=now, auction_id=auction_id)
            )
        per_auction.append(cmds)
    while per_auction:  # interleave: round-robin over auctions, keeping each auction's order
        for cmds in list(per_auction):
            yield cmds.pop(0)
            if not cmds:
                per_auction.remove(cmds)
