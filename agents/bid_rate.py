"""Accepted bids per auction per minute: a tumbling one-minute window on the events' time.

The table keeps only each auction's current window (a newer minute replaces the older one), so
nothing has to expire; the Redis read model's "hot auctions" set is fed from it. The window is
keyed by the events' `occurred_at`, not by the clock of whoever replays them, so a rebuild from
the event log gives the same counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from app.domain import BidAccepted, Event

WINDOW_S = 60


@dataclass(frozen=True, slots=True)
class BidRate:
    minute: int  # the window: epoch seconds // 60
    count: int  # accepted bids in it


def count(rate: BidRate | None, events: Iterable[Event]) -> BidRate | None:
    """`rate` with the accepted bids among `events` added (a new window starts at zero)."""
    for event in events:
        if not isinstance(event, BidAccepted):
            continue
        minute = int(event.occurred_at.timestamp()) // WINDOW_S
        if rate is None or minute > rate.minute:
            rate = BidRate(minute, 1)
        elif minute == rate.minute:
            rate = BidRate(minute, rate.count + 1)
        # an event of an older window than the one kept: that window is closed, not counted
    return rate
