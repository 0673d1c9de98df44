"""Each faust-streaming defect fixed in app/eos.py, shown with the fix left out (OUTBID_DISABLE_FIXES).

The same scenarios with every fix in place are the e2e pipeline tests (test_pipeline.py), which
pass; here each defect must show itself, so a fix that stops mattering is noticed.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from aiokafka.partitioner import DefaultPartitioner
from rocksdict import AccessType, Rdict

from app.sample import sample_commands
from tests.e2e.conftest import Pipeline, produce_commands
from tests.e2e.test_pipeline import expected_views, wait_until_views_match

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
OFFSET_KEY = b"__faust\x00offset__"  # where Faust keeps the changelog offset a RocksDB reflects


def partition_of(auction_id: str, partitions: int = 8) -> int:
    """murmur2, as the Java client, aiokafka and Faust hash keys."""
    return int(
        DefaultPartitioner()(auction_id.encode(), list(range(partitions)), list(range(partitions)))
    )


def _feed(
    line: Pipeline, auctions: int = 12, seed: int = 3, avoid_partition: int | None = None
) -> dict[str, dict[str, object]]:
    commands = [
        c
        for c in sample_commands(auctions=auctions, bids_per_auction=4, seed=seed)
        if partition_of(c.auction_id) != avoid_partition
    ]
    produce_commands(line, commands)
    return expected_views(commands)


def _persisted_offsets(data_dir: Path) -> dict[str, int | None]:
    offsets = {}
    for db in sorted((data_dir / "data" / "v1" / "tables").glob("auctions-*.db")):
        store = Rdict(str(db), access_type=AccessType.read_only())
        try:
            raw = store.get(OFFSET_KEY)
        finally:
            store.close()
        offsets[db.name] = int(raw) if raw is not None else None
    return offsets


@pytest.mark.parametrize("disabled", ["transactions", ""])
def test_changelog_offsets_are_persisted_only_with_the_fix(
    pipeline: Pipeline, disabled: str
) -> None:
    pipeline.env["OUTBID_DISABLE_FIXES"] = disabled
    pipeline.start(1)
    expected = _feed(pipeline)
    wait_until_views_match(pipeline.urls(), expected)
    time.sleep(3)  # a few commit intervals
    pipeline.stop_worker(1)
    offsets = _persisted_offsets(pipeline.specs[0].data_dir)
    written = {f"auctions-{partition_of(aid)}.db" for aid in expected}
    stored = {name: offsets.get(name) for name in written}
    if disabled:
        # Stock Faust under exactly_once never stores the offset: every restart replays everything.
        assert set(stored.values()) == {None}
    else:
        assert None not in stored.values(), stored
