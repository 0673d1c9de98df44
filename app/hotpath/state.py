"""One partition's auctions and views for the hot path: committed, and this transaction's changes.

Committed values live in a RocksDB (rocksdict) per partition with a bounded cache of decoded
objects in front; values changed by the open transaction live only in `dirty` until the
transaction commits (`committed()`) or aborts (`rolled_back()`), so a failed transaction never
leaves a trace. The local RocksDB is rebuilt from the two changelogs at every assignment: the
changelogs are the truth, the local copy only keeps memory bounded.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rocksdict import Options, Rdict, WriteBatch

from app.domain import (
    AuctionState,
    HighestBid,
    decode_state,
    decode_view,
    encode_state,
    encode_view,
)

STATE, VIEW = b"s", b"v"  # key prefixes in the partition's RocksDB


@dataclass(slots=True)
class Entry:
    """One auction in the open transaction: its state, its view and what changed them."""

    state: AuctionState
    view: HighestBid | None
    issued_at: float | None = None  # of the newest command decided in this transaction
    accepted_bids: int = 0  # BidAccepted events in this transaction
    changed: bool = False  # events were decided for it in this transaction


@dataclass
class PartitionState:
    partition: int
    path: Path
    cache_size: int = 10_000
    db: Rdict = field(init=False)
    _cache: dict[bytes, tuple[AuctionState, HighestBid | None]] = field(default_factory=dict)
    dirty: dict[bytes, Entry] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)  # rebuilt from the changelogs, never trusted
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = Rdict(str(self.path), options=Options(raw_mode=True))

    def entry(self, key: bytes, auction_id: str) -> Entry:
        """The auction as this transaction sees it (created empty on first use)."""
        found = self.dirty.get(key)
        if found is not None:
            return found
        cached = self._cache.get(key)
        if cached is None:
            cached = self._load(key, auction_id)
        entry = Entry(*cached)
        self.dirty[key] = entry
        return entry

    def _load(self, key: bytes, auction_id: str) -> tuple[AuctionState, HighestBid | None]:
        raw_state = self.db.get(STATE + key)
        raw_view = self.db.get(VIEW + key)
        state = decode_state(raw_state) if raw_state is not None else AuctionState.empty(auction_id)
        view = decode_view(raw_view) if raw_view is not None else None
        self._remember(key, state, view)
        return state, view

    def _remember(self, key: bytes, state: AuctionState, view: HighestBid | None) -> None:
        self._cache[key] = (state, view)
        if len(self._cache) > self.cache_size:
            del self._cache[next(iter(self._cache))]  # the oldest insertion

    def changed(self) -> list[tuple[bytes, Entry]]:
        return [(key, entry) for key, entry in self.dirty.items() if entry.changed]

    def committed(self) -> None:
        """The open transaction committed: its values become the partition's committed state."""
        batch = WriteBatch(raw_mode=True)
        for key, entry in self.changed():
            batch.put(STATE + key, encode_state(entry.state))
            if entry.view is not None:
                batch.put(VIEW + key, encode_view(entry.view))
            self._remember(key, entry.state, entry.view)
        self.db.write(batch)
        self.dirty.clear()

    def rolled_back(self) -> None:
        """The open transaction aborted: forget everything it changed."""
        self.dirty.clear()

    def load_changelog(self, prefix: bytes, records: list[tuple[bytes, bytes | None]]) -> int:
        """Apply changelog records (key, value or None for a tombstone) to the local copy."""
        batch = WriteBatch(raw_mode=True)
        for key, value in records:
            if value is None:
                batch.delete(prefix + key)
            else:
                batch.put(prefix + key, value)
        self.db.write(batch)
        self._cache.clear()
        return len(records)

    def views(self) -> list[HighestBid]:
        """Every committed view (for re-syncing the read model after an assignment)."""
        found = []
        items: Any = self.db.items(from_key=VIEW)  # raw mode: bytes keys and values
        for key, raw in items:
            if not key.startswith(VIEW):
                break
            found.append(decode_view(raw))
        return found

    def close(self) -> None:
        self.db.close()
        shutil.rmtree(self.path, ignore_errors=True)
