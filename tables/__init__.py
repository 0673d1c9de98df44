"""The tables: each partition's state in RocksDB (rocksdict), one compacted changelog per table.

- `auctions`, `highest_bids`, `bid_rate`: what each table holds and how its values are encoded;
- `store`: one RocksDB per table partition, written only with committed state;
- `partition`: one partition's tables as the open transaction sees them (write-back, rollback);
- `recovery`: a partition's tables on assignment (local copy or snapshot, then the changelog tail);
- `snapshots`: checkpoints of table partitions, captured after commits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Table:
    """A table's declaration: its name (the RocksDB folder and snapshot name), its changelog
    (a topics.yaml name) and its value codec."""

    name: str
    changelog: str
    encode: Callable[[Any], bytes]
    decode: Callable[[bytes], Any]
    help: str
