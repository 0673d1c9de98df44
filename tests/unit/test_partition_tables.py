"""One partition's tables in a real RocksDB (tmp_path): nothing uncommitted ever reaches the disk."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from rocksdict import Cache

from agents.records import Incoming
from agents.step import CommandStep
from app.domain import OpenAuction, PlaceBid, encode_command
from tables.auctions import AUCTIONS
from tables.highest_bids import HIGHEST_BIDS
from tables.partition import PartitionTables
from tables.store import OFFSET_KEY, TableDB, rocksdb_options

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
STEP = CommandStep(max_recent=128, clock=lambda: T0)


def open_tables(folder: Path) -> PartitionTables:
    return PartitionTables(2, folder, rocksdb_options(Cache(1024 * 1024)), cache_size=100)


def decide(tables: PartitionTables, *commands: OpenAuction | PlaceBid) -> None:
    for offset, command in enumerate(commands):
        value = encode_command(command)
        STEP(tables, Incoming("c", 2, offset, command.auction_id.encode(), value))


def opened(auction: str) -> OpenAuction:
    return OpenAuction(f"o-{auction}", T0, auction, "s", 1000, 100, "EUR", T0 + timedelta(hours=1))


def commit(tables: PartitionTables, offset: int) -> None:
    changes = tables.changes()
    tables.committed(changes, {name: offset for name, kv in changes.records.items() if kv})


def test_changes_are_invisible_on_disk_until_committed(tmp_path: Path) -> None:
    tables = open_tables(tmp_path)
    decide(tables, opened("A-1"), PlaceBid("b-1", T0, "A-1", "x", 1500, "EUR"))
    assert tables.read(HIGHEST_BIDS, b"A-1") is None
    assert tables.dbs[AUCTIONS.name].offset == -1
    commit(tables, 41)
    view = HIGHEST_BIDS.decode(tables.read(HIGHEST_BIDS, b"A-1") or b"")
    assert (view.seq, view.highest_bid) == (2, 1500)
    assert all(db.offset == 41 for db in tables.dbs.values())


def test_a_rolled_back_transaction_leaves_no_trace_in_memory_or_on_disk(tmp_path: Path) -> None:
    tables = open_tables(tmp_path)
    decide(tables, opened("A-1"))
    commit(tables, 0)
    decide(tables, PlaceBid("b-1", T0, "A-1", "x", 1500, "EUR"))
    tables.rolled_back()
    entry = tables.entry(b"A-1", "A-1")
    assert entry.state.version == 1  # the bid is forgotten: it will be decided again
    assert not entry.changed
    tables.close()
    again = open_tables(tmp_path)  # what a restarted worker finds on disk
    assert AUCTIONS.decode(again.read(AUCTIONS, b"A-1") or b"").version == 1
    assert again.dbs[AUCTIONS.name].offset == 0


def test_each_changed_auction_is_written_once_per_transaction(tmp_path: Path) -> None:
    tables = open_tables(tmp_path)
    decide(
        tables,
        opened("A-1"),
        *(PlaceBid(f"b-{n}", T0, "A-1", "x", 1100 + 100 * n, "EUR") for n in range(5)),
        opened("A-2"),
    )
    changes = tables.changes()
    assert sorted(key for key, _ in changes.records[AUCTIONS.name]) == [b"A-1", b"A-2"]
    last = dict(changes.records[AUCTIONS.name])[b"A-1"]
    assert AUCTIONS.decode(last).version == 6  # the last value, as compaction would keep


def test_the_offset_key_is_not_a_table_value(tmp_path: Path) -> None:
    db = TableDB(tmp_path / "t.db", rocksdb_options(Cache(1024 * 1024)))
    db.write([(b"k", b"v")], 7)
    assert dict(db.items()) == {b"k": b"v"}
    assert db.get(OFFSET_KEY) == b"7"
    db.close()
    assert db.get(b"k") is None  # a closed table answers nothing, never raises
