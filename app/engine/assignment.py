"""The partitions this worker owns: recovered when assigned, released when revoked or lost.

Rebalance rules (cooperative-sticky, KIP-429; static membership, KIP-345), as the engine applies
them, all on the engine's thread (librdkafka calls them from `consume()`):
- assigned: each newly given partition's tables are recovered (tables/recovery.py) before it is
  processed or served; meanwhile it is "recovering" (the web views answer 503 + Retry-After);
- revoked: the engine commits its open transaction first (the records are still ours), then the
  partitions are released here;
- lost (no revoke: the session timed out): the engine aborts its transaction; released the same.
A released partition's database stays on disk: a later assignment replays only its tail.

The web views read `serving()` from other threads; `generation` changes at every rebalance step,
so they know to refresh who owns what (app/engine/owners.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from rocksdict import Options

from app import metrics
from app.audit.reader import TopicReader
from app.errors import KafkaUnavailableError
from app.settings import Settings
from app.topics.incarnation import Incarnation
from tables import Table
from tables.partition import TABLES, PartitionTables
from tables.recovery import recover
from tables.snapshots import Checkpointer

log = logging.getLogger(__name__)
KAFKA_TIMEOUT_S = 60.0
REDIS_CATCH_UP_CHUNK = 5_000

Views = list[tuple[Any, float | None, int]]


class Assignment:
    def __init__(
        self,
        settings: Settings,
        tabledir: Path,
        rocksdb: Options,
        changelog_topic: Callable[[Table], str],
        events_topic: str,
        checkpoints: Checkpointer | None,
        to_redis: Callable[[Views], None] | None,
        incarnations: dict[str, Incarnation],
    ) -> None:
        self.settings, self.tabledir, self.rocksdb = settings, tabledir, rocksdb
        self.changelog_topic, self.events_topic = changelog_topic, events_topic
        self.checkpoints, self.to_redis = checkpoints, to_redis
        self.partitions: dict[int, PartitionTables] = {}  # recovered: processed and served
        self.recovering: set[int] = set()
        # Each owned partition's committed offset in the commands topic: read at assignment and
        # advanced by the engine at each commit. An abort rewinds to it and a table snapshot's
        # manifest records it without asking the group again: a read_committed OffsetFetch waits
        # while a transaction has offsets pending (KIP-447), and ours just aborted or committed.
        self.committed: dict[int, int] = {}
        self.generation = 0  # rebalance steps seen
        self.lock = threading.Lock()  # guards `partitions` for readers on other threads
        # Each changelog's and the event log's live incarnation (topic and cluster id), read at
        # every assignment: snapshots record it and restore only into the topic they came from.
        self.incarnations = incarnations

    # --- for the web views (any thread) ----------------------------------------------------

    def serving(self, partition: int) -> PartitionTables | None:
        """The partition's tables when this worker owns it and has recovered it."""
        with self.lock:
            return self.partitions.get(partition)

    def state(self) -> tuple[list[int], list[int]]:
        """(recovered and processing, recovering)."""
        with self.lock:
            return sorted(self.partitions), sorted(self.recovering)

    # --- rebalance steps (the engine's thread) ----------------------------------------------

    def assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if not partitions:  # the end of a cooperative round that gave this worker nothing
            return
        metrics.REBALANCES.inc()
        log.info("assigned partition(s) %s", sorted(tp.partition for tp in partitions))
        fresh = [tp for tp in partitions if tp.partition not in self.partitions]
        with self.lock:
            self.recovering.update(tp.partition for tp in fresh)
            self.generation += 1
        if fresh:
            started = time.perf_counter()
            # With read_committed this waits until no transaction of a previous owner is pending
            # on the offsets (KIP-447): the changelogs read next then hold all it committed.
            for tp in consumer.committed(fresh, timeout=KAFKA_TIMEOUT_S):
                if tp.error is not None:  # kept as "none yet", an abort would rewind to the start
                    raise KafkaUnavailableError(
                        f"could not read the group's committed offset of {tp.topic}[{tp.partition}]"
                        f": {tp.error.str()}; restart the worker once the broker answers"
                    )
                self.committed[tp.partition] = tp.offset  # negative: none yet (from the start)
            reader = TopicReader(self.settings.kafka_client_config())
            try:
                for topic in [self.events_topic, *map(self.changelog_topic, TABLES)]:
                    self.incarnations[topic] = reader.incarnation(topic)
                for tp in fresh:
                    self._recover(reader, tp.partition)
            finally:
                reader.close()
            metrics.RECOVERY.observe(time.perf_counter() - started)
        metrics.ASSIGNED.set(len(self.partitions))

    def release(self, gone: set[int]) -> None:
        with self.lock:
            released = [self.partitions.pop(p) for p in gone if p in self.partitions]
            self.generation += 1
        for partition in gone:
            self.committed.pop(partition, None)
        if released:
            log.info("released partition(s) %s", sorted(t.partition for t in released))
        for tables in released:
            tables.close()
            if self.checkpoints is not None:
                self.checkpoints.forget(tables.partition)
        metrics.ASSIGNED.set(len(self.partitions))

    def close(self) -> None:
        with self.lock:
            for tables in self.partitions.values():
                tables.close()
            self.partitions.clear()

    def _recover(self, reader: TopicReader, partition: int) -> None:
        tables = PartitionTables(
            partition, self.tabledir, self.rocksdb, self.settings.cache_auctions
        )
        service = self.checkpoints.service if self.checkpoints is not None else None
        recovered = recover(tables, reader, self.changelog_topic, service)
        if self.checkpoints is not None:  # a long replay makes a snapshot due, like new writes
            self.checkpoints.written(partition, {r.table: r.replayed for r in recovered})
        if self.to_redis is not None:
            # A crash between a commit and its Redis write left Redis behind: catch it up.
            views = tables.views()
            for start in range(0, len(views), REDIS_CATCH_UP_CHUNK):
                chunk = views[start : start + REDIS_CATCH_UP_CHUNK]
                self.to_redis([(view, None, 0) for view in chunk])
        with self.lock:
            self.partitions[partition] = tables
            self.recovering.discard(partition)
            self.generation += 1
