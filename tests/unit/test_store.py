"""tables/store.py: a table partition's RocksDB is trusted only after a clean shutdown (fix 10).

Faust writes a table value to RocksDB when it is assigned, before the Kafka transaction carrying
its changelog record commits. After `kill -9` that transaction is aborted but RocksDB (its WAL
survives) keeps the value, and recovery replays only committed changelog records *after* the
stored offset - so the aborted value would stay. The stock store keeps it; ours drops the
database and rebuilds it (from a snapshot and the committed changelog).
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import faust
import pytest

from tables import store as table_store


def open_store(url: str, datadir: Path) -> tuple[faust.App, Any]:
    table_store.register()
    app = faust.App(
        "fix10", broker="kafka://127.0.0.1:1", store=url, datadir=str(datadir), autodiscover=False
    )
    table = app.Table("t", key_type=bytes, value_type=bytes, partitions=1)
    return app, table.data


def killed(store: Any) -> None:
    """What kill -9 leaves: the database files as they are, no stop(), no marker."""
    store._dbs.clear()
    gc.collect()


@pytest.mark.parametrize(
    ("url", "survives"), [("rocksdb://", True), (f"{table_store.SCHEME}://", False)]
)
def test_writes_of_a_killed_worker_do_not_survive_a_restart(
    tmp_path: Path, url: str, survives: bool
) -> None:
    _, store = open_store(url, tmp_path)
    store._db_for_partition(0).put(b"A-1", b"written in a transaction that never committed")
    killed(store)

    _, restarted = open_store(url, tmp_path)
    found = restarted._db_for_partition(0).get(b"A-1")
    assert (found is not None) is survives  # stock Faust keeps the aborted write


def test_a_cleanly_stopped_store_keeps_its_state(tmp_path: Path) -> None:
    app, store = open_store(f"{table_store.SCHEME}://", tmp_path)
    store._db_for_partition(0).put(b"A-1", b"committed")
    store._mark_clean([0])  # what stop() does after the final commit
    killed(store)
    _, restarted = open_store(f"{table_store.SCHEME}://", tmp_path)
    assert restarted._db_for_partition(0).get(b"A-1") == b"committed"
    del app
