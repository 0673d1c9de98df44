"""The RocksDB table store, made safe against `kill -9` under exactly-once.

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
database is rebuilt from the committed changelog. A database found without its marker is deleted before Faust opens it;
recovery rebuilds it from the committed changelog.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from faust.stores import STORES
from faust.stores.rocksdb import Store

from app import metrics

log = logging.getLogger(__name__)
SCHEME = "outbid"  # store="outbid://"
CLEAN = ".clean"


def clean_marker(path: Path) -> Path:
    return path.with_name(path.name + CLEAN)


class OutbidStore(Store):
    """faust's rocksdict store plus the clean-shutdown rule (see module doc)."""

    def _open_for_partition(self, partition: int) -> Any:
        path = self.partition_path(partition)
        marker = clean_marker(path)
        if path.exists() and not marker.exists():
            log.warning(
                "%s was not closed cleanly (worker killed?): deleting it; recovery rebuilds it "
                "from the committed changelog",
                path,
            )
            shutil.rmtree(path)
        marker.unlink(missing_ok=True)
        return super()._open_for_partition(partition)

    def apply_changelog_batch(self, batch: Any, to_key: Any, to_value: Any) -> None:
        """Recovery (and standby) replay: counted, so recovery cost is visible in /metrics."""
        events = list(batch)
        metrics.RECOVERY_RECORDS.labels(self.table_name).inc(len(events))
        super().apply_changelog_batch(events, to_key, to_value)

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
