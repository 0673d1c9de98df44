"""`highest_bids`: the highest-bid projection (HighestBid as codec bytes), keyed by auction id bytes."""

from __future__ import annotations

from typing import Any

import faust

from app.settings import Settings
from tables.options import bytes_table

NAME = "highest_bids"  # changelog: {app id}-highest_bids-changelog, declared in topics.yaml


def declare(app: faust.App, settings: Settings, partitions: int) -> Any:
    return bytes_table(
        app, settings, NAME, partitions, "Highest bid per auction, folded from auction-events."
    )
