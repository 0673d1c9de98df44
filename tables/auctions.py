"""`auctions`: the auction aggregate (AuctionState as codec bytes), keyed by auction id bytes."""

from __future__ import annotations

from typing import Any

import faust

from app.settings import Settings
from tables.options import bytes_table

NAME = "auctions"  # changelog: {app id}-auctions-changelog, declared in topics.yaml


def declare(app: faust.App, settings: Settings, partitions: int) -> Any:
    return bytes_table(
        app, settings, NAME, partitions, "Auction aggregate state, written by the command handler."
    )
