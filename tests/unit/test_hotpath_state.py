"""app/hotpath/state.py: what the open transaction changed is invisible to nobody and survives
only a commit; the local RocksDB is rebuilt, never trusted."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from app.domain import OpenAuction, PlaceBid, apply, decide, encode_state, encode_view, evolve
from app.hotpath.state import STATE, VIEW, PartitionState

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def open_and_bid(state: PartitionState, key: bytes = b"A-1") -> None:
    entry = state.entry(key, key.decode())
    for command in (
        OpenAuction(
            command_id="open",
            issued_at=NOW,
            auction_id=key.decode(),
            seller_id="s",
            starting_price=100,
            min_increment=10,
            currency="EUR",
            closes_at=datetime(2027, 1, 1, tzinfo=UTC),
        ),
        PlaceBid(
            command_id="bid",
            issued_at=NOW,
            auction_id=key.decode(),
            bidder_id="b",
            amount=150,
            currency="EUR",
        ),
    ):
        for event in decide(entry.state, command, NOW):
            entry.state = evolve(entry.state, event)
            entry.view = apply(entry.view, event)
    entry.changed = True


def test_a_committed_transaction_is_what_the_next_one_reads(tmp_path: Path) -> None:
    state = PartitionState(0, tmp_path / "p0")
    open_and_bid(state)
    state.committed()
    assert not state.dirty
    again = state.entry(b"A-1", "A-1")
    assert again.state.version == 2
    assert again.view is not None
    assert again.view.highest_bid == 150
    assert again.changed is False  # reading is not changing: nothing to write at the next commit
    assert state.changed() == []


def test_a_rolled_back_transaction_leaves_no_trace(tmp_path: Path) -> None:
    state = PartitionState(0, tmp_path / "p0")
    open_and_bid(state)
    state.rolled_back()
    fresh = state.entry(b"A-1", "A-1")
    assert fresh.state.version == 0
    assert fresh.view is None
    assert state.db.get(STATE + b"A-1") is None


def test_an_evicted_auction_is_read_back_from_rocksdb(tmp_path: Path) -> None:
    state = PartitionState(0, tmp_path / "p0", cache_size=1)
    open_and_bid(state, b"A-1")
    open_and_bid(state, b"A-2")
    state.committed()  # A-1 is pushed out of the one-entry cache
    entry = state.entry(b"A-1", "A-1")
    assert entry.state.version == 2
    assert entry.view is not None
    assert entry.view.highest_bidder == "b"


def test_the_local_copy_is_rebuilt_from_the_changelogs(tmp_path: Path) -> None:
    donor = PartitionState(0, tmp_path / "donor")
    open_and_bid(donor)
    [(key, entry)] = donor.changed()
    assert entry.view is not None
    path = tmp_path / "p0"
    stale = PartitionState(0, path)
    stale.db.put(STATE + b"ghost", b"left by a killed process")
    stale.db.close()
    rebuilt = PartitionState(0, path)  # a new assignment: whatever was on disk is gone
    assert rebuilt.db.get(STATE + b"ghost") is None
    rebuilt.load_changelog(
        STATE, [(key, encode_state(entry.state)), (b"gone", b"x"), (b"gone", None)]
    )
    rebuilt.load_changelog(VIEW, [(key, encode_view(entry.view))])
    assert rebuilt.entry(key, "A-1").state == entry.state
    assert rebuilt.db.get(STATE + b"gone") is None  # a tombstone deletes
    assert [v.auction_id for v in rebuilt.views()] == ["A-1"]
