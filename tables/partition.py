"""One partition's tables as the open transaction sees them: committed values, and its changes.

Committed values live in the table databases (tables/store.py) with a bounded cache of decoded
objects in front. The open transaction's changes live only in `dirty` until it commits
(`committed`, which writes them to RocksDB with their changelog offsets) or aborts
(`rolled_back`, which forgets them): an aborted or fenced transaction leaves no trace.

Write-back: each changed auction's last state, view and bid rate are written to the changelogs
once per transaction (the last value, which is what compaction would keep), not once per command.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rocksdict import Options

from agents.bid_rate import BidRate
from agents.step import Entry
from app.domain import AuctionState, HighestBid
from tables import Table
from tables.auctions import AUCTIONS
from tables.bid_rate import BID_RATE
from tables.highest_bids import HIGHEST_BIDS
from tables.store import TableDB

TABLES: tuple[Table, ...] = (AUCTIONS, HIGHEST_BIDS, BID_RATE)
Committed = tuple[AuctionState, HighestBid | None, BidRate | None]


def table_path(folder: Path, table: Table, partition: int) -> Path:
    return folder / f"{table.name}-{partition}.db"


@dataclass(slots=True)
class Changes:
    """What the open transaction changed, encoded once for the changelogs and the databases."""

    entries: list[tuple[bytes, Entry]] = field(default_factory=list)
    records: dict[str, list[tuple[bytes, bytes]]] = field(default_factory=dict)  # table -> kv

    def __bool__(self) -> bool:
        return bool(self.entries)


class PartitionTables:
    def __init__(self, partition: int, folder: Path, options: Options, cache_size: int) -> None:
        self.partition = partition
        self.cache_size = cache_size
        self.dbs = {t.name: TableDB(table_path(folder, t, partition), options) for t in TABLES}
        self._cache: dict[bytes, Committed] = {}
        self.dirty: dict[bytes, Entry] = {}

    # --- the open transaction (engine thread) ---------------------------------------------

    def entry(self, key: bytes, auction_id: str) -> Entry:
        found = self.dirty.get(key)
        if found is not None:
            return found
        committed = self._cache.get(key)
        if committed is None:
            committed = self._load(key, auction_id)
        entry = Entry(*committed)
        self.dirty[key] = entry
        return entry

    def _load(self, key: bytes, auction_id: str) -> Committed:
        raw_state = self.dbs[AUCTIONS.name].get(key)
        raw_view = self.dbs[HIGHEST_BIDS.name].get(key)
        raw_rate = self.dbs[BID_RATE.name].get(key)
        committed = (
            AUCTIONS.decode(raw_state) if raw_state is not None else AuctionState.empty(auction_id),
            HIGHEST_BIDS.decode(raw_view) if raw_view is not None else None,
            BID_RATE.decode(raw_rate) if raw_rate is not None else None,
        )
        self._remember(key, committed)
        return committed

    def _remember(self, key: bytes, committed: Committed) -> None:
        self._cache[key] = committed
        if len(self._cache) > self.cache_size:
            del self._cache[next(iter(self._cache))]  # the oldest insertion

    def changes(self) -> Changes:
        changes = Changes()
        auctions: list[tuple[bytes, bytes]] = []
        views: list[tuple[bytes, bytes]] = []
        rates: list[tuple[bytes, bytes]] = []
        for key, entry in self.dirty.items():
            if not entry.changed:
                continue
            changes.entries.append((key, entry))
            auctions.append((key, AUCTIONS.encode(entry.state)))
            if entry.view is not None:
                views.append((key, HIGHEST_BIDS.encode(entry.view)))
            if entry.rate is not None:
                rates.append((key, BID_RATE.encode(entry.rate)))
        changes.records = {
            AUCTIONS.name: auctions,
            HIGHEST_BIDS.name: views,
            BID_RATE.name: rates,
        }
        return changes

    def committed(self, changes: Changes, offsets: dict[str, int]) -> None:
        """The transaction carrying `changes` committed; `offsets`: table -> the changelog offset
        of its last record in it."""
        for table, records in changes.records.items():
            if records:
                self.dbs[table].write(records, offsets[table])
        for key, entry in changes.entries:
            self._remember(key, (entry.state, entry.view, entry.rate))
        self.dirty.clear()

    def rolled_back(self) -> None:
        self.dirty.clear()

    # --- committed state (any thread) -----------------------------------------------------

    def read(self, table: Table, key: bytes) -> bytes | None:
        return self.dbs[table.name].get(key)

    def views(self) -> list[HighestBid]:
        return [HIGHEST_BIDS.decode(raw) for _key, raw in self.dbs[HIGHEST_BIDS.name].items()]

    def forget_cache(self) -> None:
        self._cache.clear()

    def close(self) -> None:
        for db in self.dbs.values():
            db.close()
