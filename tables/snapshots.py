"""When table partitions are checkpointed, and by whom (app/snapshots/checkpoints.py takes them).

A table database holds only committed state (tables/store.py), so any moment between two
transactions is a consistent one: the engine calls `capture_due` after each commit and while
idle. The capture (a RocksDB checkpoint: hard links plus a flushed memtable) runs in the engine's
thread; archiving and uploading run in a background thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from app.settings import Settings
from app.snapshots.blobs import blob_store
from app.snapshots.checkpoints import Policy, TableSnapshots
from app.snapshots.s3 import S3BlobStore
from app.topics.incarnation import Incarnation
from tables import Table
from tables.partition import TABLES, PartitionTables

log = logging.getLogger(__name__)
CAPTURES_PER_CALL = 1
STAGING = ".snapshot-staging"  # next to the table databases: checkpoints hard-link their files


def service_from(settings: Settings) -> TableSnapshots | None:
    """The worker's snapshot service; None when snapshots are off."""
    policy = Policy(
        interval_s=settings.snapshot_interval_s,
        every_writes=settings.snapshot_every_writes,
        keep=settings.snapshot_keep,
    )
    if not (policy.interval_s or policy.every_writes):
        return None
    store = blob_store(settings)
    if isinstance(store, S3BlobStore):
        try:
            store.ensure_bucket()
        except OSError as exc:  # an unreachable store costs snapshots, never the worker
            log.warning("snapshot store %r not ready (%s): snapshots will be retried", store, exc)
    return TableSnapshots(store, app_id=settings.group_id, policy=policy)


class Checkpointer:
    def __init__(
        self,
        service: TableSnapshots,
        folder: Path,
        topic_of: Callable[[Table], str],
        incarnations: Mapping[str, Incarnation],
    ) -> None:
        """`incarnations`: each changelog's live incarnation, kept current by the engine (read
        at every assignment); a snapshot records it, so it restores only into that topic."""
        self.service = service
        self.staging = folder / STAGING
        self.topic_of = topic_of
        self.incarnations = incarnations
        self._publisher = ThreadPoolExecutor(1, thread_name_prefix="outbid-snapshots")

    def written(self, partition: int, counts: dict[str, int]) -> None:
        for table, count in counts.items():
            if count:
                self.service.note_writes(table, partition, count)

    def capture_due(
        self,
        partitions: Iterable[PartitionTables],
        sources: Callable[[int], dict[str, int]],
        limit: int = CAPTURES_PER_CALL,
    ) -> int:
        """Checkpoint due table partitions, at most `limit` (each flushes a memtable on the
        engine's thread: taking all 3 tables x 8 partitions at once, when their interval ends
        together, stalled the loop for a few hundred ms); the rest are taken on the next calls.
        `sources(partition)`: where its committed state ends in the input and the event log,
        recorded in the manifest (read only when due). Returns how many were taken."""
        taken = 0
        for tables in partitions:
            found: dict[str, int] | None = None
            for table in TABLES:
                if taken >= limit:
                    return taken
                topic = self.topic_of(table)
                live = self.incarnations.get(topic)
                if live is None or not self.service.due(table.name, tables.partition):
                    continue
                if found is None:
                    found = sources(tables.partition)
                db = tables.dbs[table.name]
                captured = self.service.capture(
                    table.name,
                    tables.partition,
                    db.db,
                    (topic, live),
                    db.offset,
                    found,
                    self.staging,
                )
                self._publisher.submit(self.service.publish, captured)
                taken += 1
        return taken

    def forget(self, partition: int) -> None:
        for table in TABLES:
            self.service.forget(table.name, partition)

    def close(self) -> None:
        # The upload in flight finishes (bounded by the store's timeouts); the ones still queued
        # are dropped: a slow store must not hold up a stopping worker. Their checkpoints are
        # swept from the staging folder at the next start.
        self._publisher.shutdown(wait=True, cancel_futures=True)
