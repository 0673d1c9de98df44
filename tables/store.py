"""The RocksDB table store, made safe against `kill -9` under exactly-once, with snapshots.

Faust writes a table value to RocksDB the moment it is assigned, long before the Kafka
transaction that carries its changelog record commits. After a crash the transaction is
aborted, but RocksDB (its WAL survives a killed process) still holds the uncommitted value, and
recovery only replays *committed* changelog records after the stored offset: the aborted value
stays. The command is then re-processed against state that already includes it - the
aggregate says "duplicate", and the command's events are lost.

So a partition's local database is trusted only if it was closed cleanly: a `.clean` marker
is written next to it when the worker stops cleanly (after its final commit), and removed when
the database is opened. A partition revoked in a rebalance gets no marker: a record of it may
have been mid-processing when its transaction ended, so if the partition comes back, its
database is rebuilt. A database found without its marker is deleted before Faust opens it.

Rebuilt from what: the newest valid table snapshot (app/snapshots/checkpoints.py) when there is
one, then Faust's recovery replays the committed changelog after the snapshot's offset; without
a snapshot, the whole changelog. Snapshots are captured here, at moments when a partition holds
only committed state: right after its transaction committed, or while it has no write since.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from faust.stores import STORES
from faust.stores.rocksdb import Store
from faust.streams import current_event
from faust.types import TP

from app import metrics
from app.snapshots.checkpoints import TableSnapshots

log = logging.getLogger(__name__)
SCHEME = "outbid"  # store="outbid://"
CLEAN = ".clean"
snapshots: TableSnapshots | None = None
_every_write_dirty = True  # exactly_once: a write is uncommitted until its partition commits


def clean_marker(path: Path) -> Path:
    return path.with_name(path.name + CLEAN)


def configure(service: TableSnapshots | None, *, exactly_once: bool) -> None:
    """Set by create_app: the worker's snapshot service (None: snapshots off)."""
    global snapshots, _every_write_dirty  # noqa: PLW0603 - Faust builds stores; this is their config
    snapshots = service
    _every_write_dirty = exactly_once


class OutbidStore(Store):
    """faust's rocksdict store plus the clean-shutdown rule and snapshots (see module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.dirty: set[int] = set()  # partitions written since their last commit
        super().__init__(*args, **kwargs)

    @property
    def changelog_name(self) -> str:
        return str(self.table.changelog_topic.get_topic_name())

    def _open_for_partition(self, partition: int) -> Any:
        path = self.partition_path(partition)
        marker = clean_marker(path)
        if path.exists() and not marker.exists():
            log.warning(
                "%s was not closed cleanly (worker killed?): deleting it; it is rebuilt from a "
                "snapshot and the committed changelog",
                path,
            )
            shutil.rmtree(path)
        marker.unlink(missing_ok=True)
        if not path.exists() and snapshots is not None:
            snapshots.restore(self.table.name, partition, self.changelog_name, path)
        self.dirty.discard(partition)
        return super()._open_for_partition(partition)

    def _set(self, key: bytes, value: bytes | None) -> None:
        super()._set(key, value)  # asserts that there is a current event
        event: Any = current_event()
        self._written(event.message.partition)

    def _del(self, key: bytes) -> None:
        partitions = [p for p, db in self._dbs.items() if db.get(key) is not None]
        super()._del(key)
        for partition in partitions:
            self._written(partition)

    def _written(self, partition: int, count: int = 1) -> None:
        if _every_write_dirty:
            self.dirty.add(partition)
        if snapshots is not None:
            snapshots.note_writes(self.table.name, partition, count)

    def apply_changelog_batch(self, batch: Any, to_key: Any, to_value: Any) -> None:
        """Recovery (and standby) replay: counted, so recovery cost is visible in /metrics."""
        events = list(batch)
        metrics.RECOVERY_RECORDS.labels(self.table_name).inc(len(events))
        super().apply_changelog_batch(events, to_key, to_value)
        if snapshots is not None:  # committed records: they make a snapshot due, not dirty
            per_partition: dict[int, int] = {}
            for event in events:
                p = event.message.partition
                per_partition[p] = per_partition.get(p, 0) + 1
            for p, count in per_partition.items():
                snapshots.note_writes(self.table.name, p, count)

    def revoke_partitions(self, table: Any, tps: set[TP]) -> None:
        for tp in tps:
            if tp.topic in table.changelog_topic.topics:
                self.dirty.discard(tp.partition)
                if snapshots is not None:
                    snapshots.forget(self.table.name, tp.partition)
        super().revoke_partitions(table, tps)

    def changelog_offset(self, partition: int) -> int:
        raw = self._dbs[partition].get(self.offset_key)
        return int(raw) if raw is not None else -1

    def _mark_clean(self, partitions: list[int]) -> None:
        for partition in partitions:
            db = self._dbs.get(partition)
            if db is not None:
                db.flush()
            clean_marker(self.partition_path(partition)).touch()

    async def stop(self) -> None:
        if not self.app.crashed:  # a crashed worker may hold uncommitted writes
            self._mark_clean(list(self._dbs))
        await super().stop()


def register() -> None:
    STORES.aliases[SCHEME] = f"{__name__}:OutbidStore"
