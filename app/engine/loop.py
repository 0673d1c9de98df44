"""The loop: bid-commands -> the step (agents/) -> events, tables, offsets in one transaction.

One read_committed consumer and one transactional producer per worker. The loop only moves
records and owns the transaction; what to write is decided by the step, what the state is by
the partition's tables:

- a whole batch of commands goes through the step before anything waits: outputs are produced
  without awaiting each one;
- the transaction commits as soon as the loop has caught up with its input (low latency under
  light load), and at the latest every `transaction_max_s` (big transactions under a backlog);
- at commit, each changed auction's state, view and bid rate go to their changelogs once, then
  the input offsets with the group's metadata (KIP-447: a member that lost its partitions is
  fenced by the generation), then commit; only then are the changes written to RocksDB, and then
  to Redis (idempotent by seq). An abort forgets them and rewinds to the committed offsets;
- on assignment a partition's tables are recovered before it is processed (app/engine/assignment.py
  owns the partitions and the rebalance rules); on revoke the open transaction commits first (its
  records are still ours), on a loss it aborts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from rocksdict import Cache

from agents.bid_rate import WINDOW_S
from agents.records import Destination, Incoming, Outcome, Output
from agents.step import CommandStep, utc_now
from app import metrics
from app.engine import kafka
from app.engine.assignment import Assignment
from app.engine.redis_sink import RedisSink
from app.engine.transaction import PendingSnapshot, Transaction
from app.errors import OutbidError
from app.log_budget import LogBudget
from app.readmodel import BlockingReadModel
from app.retry import Backoff
from app.settings import Settings
from app.snapshots import aggregates as aggregate_snapshots
from app.topics.incarnation import Incarnation
from app.topics.spec import COMMANDS, SNAPSHOTS
from tables import Table
from tables.partition import TABLES, PartitionTables
from tables.snapshots import Checkpointer, service_from
from tables.store import MiB, rocksdb_options

log = logging.getLogger(__name__)
KAFKA_TIMEOUT_S = 60.0
CONSUME_WAIT_S = 0.005
COMMIT_ATTEMPTS = 5
IDLE_CHECKPOINT_S = 5.0
LAG_EVERY_S = 1.0
# Between aborts in a row (a topic that refuses every record would otherwise spin the loop):
# full jitter up to 0.1 s, 0.2 s, ... 5 s; the first successful commit resets it.
ABORT_BACKOFF = Backoff(initial_s=0.1, max_s=5.0)


class EngineError(OutbidError):
    """The engine cannot go on (fenced, misconfigured, or Kafka refused the transaction)."""


class Engine:
    def __init__(
        self,
        settings: Settings,
        *,
        instance: str,
        url: str,
        tabledir: Path,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.settings, self.instance, self.url = settings, instance, url
        self.commands = settings.topic(COMMANDS)
        self.snapshots_topic = settings.topic(SNAPSHOTS)
        self.topics = {d: settings.topic(d.value) for d in Destination}
        self.group = settings.group_id
        self.step = CommandStep(
            max_recent=settings.recent_commands,
            snapshot_every=settings.aggregate_snapshot_every,
            clock=clock,
        )
        self.consumer = kafka.consumer(settings, instance, url)
        self.producer = kafka.producer(settings, instance)
        self.redis = RedisSink(BlockingReadModel(settings)) if settings.redis_enabled else None
        snapshots = service_from(settings)
        # each changelog's and the event log's live incarnation: read by the assignment at every
        # assignment, recorded in snapshots (they restore only into the topic they came from)
        self.incarnations: dict[str, Incarnation] = {}
        self.checkpoints = (
            Checkpointer(snapshots, tabledir, self.changelog_topic, self.incarnations)
            if snapshots
            else None
        )
        self.assignment = Assignment(
            settings,
            tabledir,
            rocksdb_options(Cache(settings.table_cache_mb * MiB)),
            self.changelog_topic,
            self.topics[Destination.EVENTS],
            self.checkpoints,
            self.redis.submit if self.redis is not None else None,
            self.incarnations,
        )
        # recovered partitions (processed and served); changed only on this thread
        self.partitions = self.assignment.partitions
        self.txn = Transaction()
        self._snapshots_due: list[PendingSnapshot] = []  # aggregate snapshots for the next txn
        self._stopping = threading.Event()
        # How long consume() waits for a batch to fill: short, so a trickle of commands is not
        # held back (a commit takes ~15 ms of round trips anyway, which batches what arrives).
        self._wait = CONSUME_WAIT_S
        self._idle_checkpoint = self._lag_refreshed = 0.0
        self._dead_letter_log = LogBudget(log, "dead letters")
        self._abort_log = LogBudget(log, "aborted transactions")
        self._aborts_in_a_row = 0
        self.started = threading.Event()

    def changelog_topic(self, table: Table) -> str:
        return self.settings.topic(table.changelog)

    # --- for the web views (any thread) ----------------------------------------------------

    def serving(self, partition: int) -> PartitionTables | None:
        """The partition's tables when this worker owns it and has recovered it."""
        return self.assignment.serving(partition)

    def assigned(self) -> tuple[list[int], list[int]]:
        """(recovered and processing, recovering)."""
        return self.assignment.state()

    @property
    def generation(self) -> int:
        """Changes at every rebalance step: the web views refresh their owners on a change."""
        return self.assignment.generation

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        """Process until `stop()`; every record's outputs and offset commit together."""
        self.producer.init_transactions(KAFKA_TIMEOUT_S)  # fences and aborts our previous self
        self.consumer.subscribe(
            [self.commands],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        self.started.set()
        batch_size = self.settings.consume_batch
        try:
            while not self._stopping.is_set():
                # consume() returns at a full batch or at the timeout: a short timeout keeps a
                # trickle of commands from waiting for a batch that never fills.
                batch = self.consumer.consume(batch_size, self._wait)
                try:
                    for message in batch:
                        self._handle(message)
                except KafkaException as exc:  # a produce() the transaction could not take
                    self._abandon(exc)  # the rest of the batch comes again after the rewind
                    continue
                if self.txn.open and (
                    len(batch) < batch_size  # caught up: nothing gains from waiting
                    or self.txn.age() >= self.settings.transaction_max_s
                ):
                    self._commit()
                elif not batch:
                    self._idle()
            self._commit()
            if self._snapshots_due:
                self._begin()
                self._commit()
        finally:
            self._close()

    def stop(self) -> None:
        self._stopping.set()

    def _close(self) -> None:
        # With a static group.instance.id, close() does not leave the group: the partitions wait
        # for this instance for the session timeout (a restart in time gets them back as they were).
        self.consumer.close()
        try:
            self.producer.flush(10)
        except KafkaException as exc:  # a fatal producer: the loop's own error says why it stopped
            log.warning("producer flush at close: %s", exc.args[0].str())
        if self.checkpoints is not None:
            self.checkpoints.close()
        self.assignment.close()
        if self.redis is not None:
            self.redis.close()

    def _idle(self) -> None:
        self._dead_letter_log.flush_due()
        self._abort_log.flush_due()
        now = time.monotonic()
        if self._snapshots_due:  # what the last transaction left for a next one
            self._begin()
            self._commit()
        if self.checkpoints is not None and now - self._idle_checkpoint >= IDLE_CHECKPOINT_S:
            partitions = list(self.partitions.values())
            if not self.checkpoints.capture_due(partitions, self._sources):
                self._idle_checkpoint = now  # none left due: look again in a few seconds
        if now - self._lag_refreshed >= LAG_EVERY_S:
            self._lag_refreshed = now
            self._refresh_lag()

    # --- one command ------------------------------------------------------------------------

    def _handle(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            self._consumer_error(error)
            return
        partition, offset = message.partition() or 0, message.offset() or 0
        tables = self.partitions.get(partition)
        if tables is None:  # not (or no longer) ours: its owner processes it
            return
        if not self.txn.open:
            self._begin()
        self.txn.positions[partition] = offset + 1
        record = Incoming(self.commands, partition, offset, message.key(), message.value())
        result = self.step(tables, record)
        self.txn.outcomes[result.outcome] += 1
        if result.outcome is Outcome.DEAD_LETTER:
            self.txn.dead_letters[result.reason or "unknown"] += 1
            self._dead_letter_log.warning(
                result.reason or "unknown",
                "dead-lettering %s[%s]@%s: %s",
                self.commands,
                partition,
                offset,
                result.reason,
            )
        for event in result.events:
            self.txn.events[event.TYPE] += 1
        for output in result.outputs:
            self._produce(output)

    def _produce(self, output: Output) -> None:
        topic = self.topics[output.destination]
        if output.snapshot is None and output.partition is not None:  # most events: no extras
            self.producer.produce(
                topic,
                key=output.key,
                value=output.value,
                headers=output.headers,
                partition=output.partition,
            )
            return
        extra: dict[str, Any] = {}
        if output.partition is not None:
            extra["partition"] = output.partition
        if output.snapshot is not None:
            # The snapshot names the offset of its last event: known once it is delivered.
            where: list[int] = []
            self.txn.snapshots.append(
                PendingSnapshot(output.key or b"", output.snapshot, output.partition or 0, where)
            )
            extra["on_delivery"] = _on_offset(where.append)
        self.producer.produce(
            topic, key=output.key, value=output.value, headers=output.headers, **extra
        )

    def _consumer_error(self, error: KafkaError) -> None:
        code = error.code()
        if code == KafkaError._PARTITION_EOF:
            return
        if code == KafkaError.INCONSISTENT_GROUP_PROTOCOL:
            raise EngineError(
                f"consumer group {self.group} is held by clients of another protocol (an outbid "
                "older than the one-engine worker, or another application): stop them first"
            )
        if code == KafkaError.FENCED_INSTANCE_ID:
            raise EngineError(
                f"another worker joined group {self.group} as instance {self.instance!r}: give "
                "each worker its own OUTBID_INSTANCE (or web port)"
            )
        if code in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
            raise EngineError(f"{error.str()}: create the topics first (outbid topics apply)")
        if error.fatal() or not error.retriable():
            raise EngineError(f"the consumer failed: {error.str()}")
        log.warning("consumer: %s (retrying)", error.str())

    # --- the transaction --------------------------------------------------------------------

    def _begin(self) -> None:
        self.producer.begin_transaction()
        self.txn.begin()

    def _commit(self) -> bool:
        """Changelogs, snapshots and offsets, then commit; abort on any failure (and rewind to
        the committed offsets). False when the transaction was aborted."""
        if not self.txn.open:
            return True
        txn = self.txn
        snapshots, self._snapshots_due = self._snapshots_due, []
        stage = metrics.TRANSACTION_COMMIT.labels
        try:
            with stage("tables").time():
                self._write_changelogs(txn)
                self._write_snapshots(snapshots)
            if txn.positions:
                offsets = [TopicPartition(self.commands, p, o) for p, o in txn.positions.items()]
                with stage("offsets").time():
                    self.producer.send_offsets_to_transaction(
                        offsets, self.consumer.consumer_group_metadata(), KAFKA_TIMEOUT_S
                    )
            with stage("commit").time():
                self._commit_transaction()
        except KafkaException as exc:
            self._snapshots_due = snapshots  # their events are committed: write them next time
            self._abandon(exc)
            return False
        self.txn = Transaction()
        self._aborts_in_a_row = 0
        self.assignment.committed.update(txn.positions)
        self._await_reports(txn)
        self._snapshots_due = txn.snapshots  # each has its event's offset (_await_reports)
        self._after_commit(txn)
        return True

    def _await_reports(self, txn: Transaction) -> None:
        """The delivery reports whose offsets the engine keeps: the last changelog record of each
        table partition, and each aggregate snapshot's event (most are served during the commit;
        a snapshot whose report had not been served yet used to be dropped)."""
        wanted = [
            (table.name, p)
            for p, changes in txn.changes.items()
            for table in TABLES
            if changes.records[table.name]
        ]
        deadline = time.monotonic() + KAFKA_TIMEOUT_S
        self.producer.poll(0)
        while any(slot not in txn.changelog_end for slot in wanted) or any(
            not snapshot.where for snapshot in txn.snapshots
        ):
            if time.monotonic() > deadline:
                raise EngineError("committed records never reported their offsets")
            self.producer.poll(0.01)

    def _write_changelogs(self, txn: Transaction) -> None:
        """Each changed auction's last values, once per transaction; the last record of each
        changelog partition reports its offset (what the table's database will reflect)."""
        produce = self.producer.produce
        for partition, tables in self.partitions.items():
            changes = tables.changes()
            if not changes:
                continue
            txn.changes[partition] = changes
            for table in TABLES:
                records = changes.records[table.name]
                topic = self.changelog_topic(table)
                last = len(records) - 1
                for index, (key, value) in enumerate(records):
                    if index == last:
                        slot = (table.name, partition)
                        end = _on_offset(partial(txn.changelog_end.__setitem__, slot))
                        produce(topic, key=key, value=value, partition=partition, on_delivery=end)
                    else:
                        produce(topic, key=key, value=value, partition=partition)

    def _write_snapshots(self, due: list[PendingSnapshot]) -> None:
        """Aggregate snapshots whose last event is committed, with that event's offset."""
        events = self.topics[Destination.EVENTS]
        for snap in due:
            value = aggregate_snapshots.encode(
                snap.state, snap.partition, snap.where[0], self.incarnations[events]
            )
            self.producer.produce(self.snapshots_topic, key=snap.key, value=value)

    def _commit_transaction(self) -> None:
        for attempt in range(COMMIT_ATTEMPTS):
            try:
                self.producer.commit_transaction(KAFKA_TIMEOUT_S)
            except KafkaException as exc:
                if not exc.args[0].retriable() or attempt == COMMIT_ATTEMPTS - 1:
                    raise
                log.warning("commit_transaction: %s; retrying", exc.args[0])
            else:
                return

    def _abandon(self, exc: KafkaException) -> None:
        """The open transaction cannot commit: abort it and re-process from the committed offsets
        (after a backoff when it keeps happening). Stops the engine when Kafka's answer is fatal.

        A record whose delivery failed, or a failed offsets request, puts the transaction in its
        abortable state from librdkafka's own thread, at any moment. The next produce() then
        fails with _STATE ("Erroneous state"), an error that is not marked abortable itself; it
        used to leave the loop and stop the worker. The abort tells the two cases apart: it
        succeeds from the abortable state and fails from a fatal one."""
        error = exc.args[0]
        abortable = error.txn_requires_abort() or error.code() == KafkaError._STATE
        if error.fatal() or not abortable:
            raise self._refused(error) from exc
        # _STATE says only that the transaction had failed before: librdkafka's TXNERR line just
        # before this one names the cause (for example "Message size too large" and the topic)
        hint = "; librdkafka's TXNERR line says why" if error.code() == KafkaError._STATE else ""
        self._abort_log.warning(
            error.str(),
            "transaction aborted (%s%s): re-processing from the committed offsets",
            error.str(),
            hint,
        )
        metrics.TRANSACTIONS_ABORTED.inc()
        try:
            self._abort()
        except KafkaException as again:
            raise self._refused(again.args[0]) from again
        self._aborts_in_a_row += 1
        if self._aborts_in_a_row > 1:
            self._stopping.wait(ABORT_BACKOFF.delay(self._aborts_in_a_row - 2))  # stop() ends it

    def _refused(self, error: KafkaError) -> EngineError:
        return EngineError(
            f"Kafka refused the transaction: {error.str()} (another worker with instance "
            f"{self.instance!r}, or the broker's transaction state is gone): restart it"
        )

    def _abort(self) -> None:
        """Drop the open transaction and consume again from the committed offsets."""
        kafka.abort_transaction(self.producer, KAFKA_TIMEOUT_S)
        for tables in self.partitions.values():
            tables.rolled_back()
        self.txn = Transaction()
        self._rewind(list(self.partitions))

    def _rewind(self, partitions: list[int]) -> None:
        """Back to each partition's committed offset, as the engine knows it: asking the group
        instead waited up to a second for the aborted transaction's markers (its offsets stay
        pending until then), and every partition of the worker waited with it."""
        for partition in partitions:
            offset = self.assignment.committed.get(partition, OFFSET_BEGINNING)
            # none committed yet: the consumer started from the beginning (auto.offset.reset)
            self.consumer.seek(
                TopicPartition(
                    self.commands, partition, offset if offset >= 0 else OFFSET_BEGINNING
                )
            )

    def _after_commit(self, txn: Transaction) -> None:
        """The transaction committed: its table changes become committed state, then Redis."""
        for partition, changes in txn.changes.items():
            offsets = {
                table.name: txn.changelog_end[(table.name, partition)]
                for table in TABLES
                if changes.records[table.name]
            }
            self.partitions[partition].committed(changes, offsets)
            if self.checkpoints is not None:
                self.checkpoints.written(partition, {t: len(r) for t, r in changes.records.items()})
        for tables in self.partitions.values():
            tables.rolled_back()  # entries read but unchanged (duplicates) are not kept dirty
        _count(txn)
        now = time.time()
        minute = int(now) // WINDOW_S
        views = []
        for changes in txn.changes.values():
            for _key, entry in changes.entries:
                if entry.issued_at is not None:
                    # events and view commit in one transaction: both latencies end now
                    latency = max(0.0, now - entry.issued_at)
                    metrics.COMMAND_TO_EVENT.observe(latency)
                    metrics.COMMAND_TO_PROJECTION.observe(latency)
                if entry.view is not None:
                    # the hot set counts this minute's bids; an older window counts nothing now
                    rate = entry.rate.count if entry.rate and entry.rate.minute == minute else 0
                    views.append((entry.view, entry.issued_at, rate))
        metrics.PROJECTED.labels("highest_bids", "applied").inc(len(views))
        if self.redis is not None:
            self.redis.submit(views)
        if self.checkpoints is not None:
            self.checkpoints.capture_due([self.partitions[p] for p in txn.changes], self._sources)

    def _sources(self, partition: int) -> dict[str, int]:
        """Where the partition's committed state ends in its input and in the event log (the
        manifest of a table snapshot taken now): called between transactions, when nothing of
        ours is in flight, and nobody else writes this partition's events."""
        sources: dict[str, int] = {}
        committed = self.assignment.committed.get(partition, -1)
        if committed >= 0:
            sources[self.commands] = committed
        events = TopicPartition(self.topics[Destination.EVENTS], partition)
        try:
            end = self.consumer.get_watermark_offsets(events, timeout=10, cached=False)[1]
        except KafkaException as exc:
            log.warning(
                "snapshot of partition %d without %s offset: %s", partition, events.topic, exc
            )
        else:
            if end >= 0:
                sources[events.topic] = end
        return sources

    def _refresh_lag(self) -> None:
        metrics.CONSUMER_LAG.clear()
        for partition in list(self.partitions):
            tp = TopicPartition(self.commands, partition)
            try:
                _low, high = self.consumer.get_watermark_offsets(tp, cached=True)
                position = self.consumer.position([tp])[0].offset
            except KafkaException:
                continue
            if high >= 0 and position >= 0:
                metrics.CONSUMER_LAG.labels(self.commands, str(partition)).set(
                    max(0, high - position)
                )

    # --- rebalances (called from consume(), on this thread) ----------------------------------

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Partitions lost without a revoke, after a session timeout, go to _on_lost instead.
        # Still ours: what was processed commits now (an abort rewinds every partition, kept or
        # revoked; the revoked ones' next owner starts from the committed offsets anyway).
        self._commit()
        # what was left for a next transaction belongs to the partitions' next owner now
        self._release({tp.partition for tp in partitions})

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.warning(
            "lost %d partition(s) without a revoke: aborting the open transaction", len(partitions)
        )
        self._release({tp.partition for tp in partitions})
        if self.txn.open:
            self._abort()  # rewinds the partitions still assigned

    def _release(self, gone: set[int]) -> None:
        self._snapshots_due = [s for s in self._snapshots_due if s.partition not in gone]
        self.assignment.release(gone)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.assignment.assign(consumer, partitions)


def _count(txn: Transaction) -> None:
    """A committed transaction's records, in the metrics."""
    metrics.TRANSACTION_RECORDS.observe(sum(txn.outcomes.values()))
    for outcome, count in txn.outcomes.items():
        metrics.COMMANDS.labels(outcome).inc(count)
    for kind, count in txn.events.items():
        metrics.EVENTS.labels(kind).inc(count)
    for reason, count in txn.dead_letters.items():
        metrics.DEAD_LETTERS.labels(reason).inc(count)
    if txn.snapshots:
        metrics.AGGREGATE_SNAPSHOTS.inc(len(txn.snapshots))  # taken; written next commit


def _on_offset(keep: Callable[[int], None]) -> Callable[[KafkaError | None, Message], None]:
    """A delivery report that hands the record's offset to `keep` (a failed delivery makes the
    transaction's commit fail, so it needs no handling here)."""

    def delivered(err: KafkaError | None, msg: Message) -> None:
        if err is None:
            keep(msg.offset() or 0)

    return delivered
