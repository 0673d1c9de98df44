"""`bids_per_minute`: accepted bids per auction per minute, a tumbling window that expires.

Feeds the read model's "hot auctions" sorted set. Windowed keys are (auction id, window) tuples,
which Faust serializes as JSON, so this table uses str keys (json), unlike the raw-byte tables.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import faust

from app.settings import Settings
from tables.options import rocksdb_options

NAME = "bids_per_minute"  # changelog: {app id}-bids_per_minute-changelog, declared in topics.yaml
WINDOW_S = 60.0
EXPIRES = timedelta(minutes=5)


def declare(app: faust.App, settings: Settings, partitions: int) -> Any:
    table = app.Table(
        NAME,
        default=int,
        key_type=str,
        value_type=int,
        partitions=partitions,
        options=rocksdb_options(settings),
        help="Accepted bids per auction per minute (tumbling, expiring).",
    )
    return table.tumbling(WINDOW_S, expires=EXPIRES)
