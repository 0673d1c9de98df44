"""The hot path: bid-commands -> decision events + highest-bid view in one confluent-kafka loop.

It writes exactly what the Faust agents write (agents/bids.py, agents/highest_bids.py), to the
same topics and in the same formats: events, the `auctions` and `highest_bids` changelogs,
aggregate snapshots, dead letters, re-routed commands, and the consumer group's offsets. So
`outbid verify` audits it unchanged, and Faust workers can take over from where it stopped.

What is different is how the work is done (docs/benchmarks.md has the profile behind it):
- one read_committed consumer and one transactional producer per process; the input offsets
  commit in the transaction with `send_offsets_to_transaction` and the group's metadata, so a
  member that lost its partitions is fenced by the group generation (KIP-447);
- a whole batch of commands is decided before anything waits: records are produced without
  awaiting each one; the transaction commits as soon as the loop has caught up with its input
  (low latency under light load), and at the latest every `commit_interval_s` (big transactions
  under a backlog);
- the projection runs in the same step as the decision, on the same partition: the view of an
  auction commits in the same transaction as the events it reflects;
- table values are a write-back cache: each auction's state and view are written to their
  changelogs once per transaction (the last value, as compaction would keep), not per command;
- Redis is written after the commit (never showing an uncommitted view), idempotent by seq,
  and re-synced from the changelog at every assignment, so a crash between commit and write
  cannot leave it behind.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from agents.dead_letters import dead_letter_headers
from app import headers, metrics
from app.audit.reader import TopicReader
from app.domain import (
    BidAccepted,
    apply,
    decide,
    decode_command,
    encode_event,
    encode_state,
    encode_view,
    evolve,
)
from app.errors import InvalidMessage, OutbidError
from app.hotpath.state import STATE, VIEW, Entry, PartitionState
from app.producers import command_producer
from app.readmodel import REDIS_BACKOFF, BlockingReadModel
from app.retry import retry_blocking
from app.settings import Settings
from app.snapshots import aggregates as aggregate_snapshots
from app.topics.spec import (
    AUCTIONS_CHANGELOG,
    COMMANDS,
    DLQ,
    EVENTS,
    HIGHEST_BIDS_CHANGELOG,
    SNAPSHOTS,
)

log = logging.getLogger(__name__)
Headers = list[tuple[str, str | bytes | None]]
KAFKA_TIMEOUT_S = 60.0
POLL_S = 0.1
DEFAULT_COMMIT_INTERVAL_S = 0.05  # the longest a transaction stays open (under a backlog)
COMMIT_ATTEMPTS = 5


class HotPathError(OutbidError):
    """The hot path cannot go on (fenced, or Kafka refused the transaction for good)."""


@dataclass(frozen=True, slots=True)
class Options:
    instance: str  # part of the transactional id: keep it stable across restarts of one process
    commit_interval_s: float = DEFAULT_COMMIT_INTERVAL_S
    batch: int = 2_000  # records per consume() call
    cache_size: int = 20_000  # decoded auctions kept per partition
    redis: bool = True


@dataclass(frozen=True, slots=True)
class PendingSnapshot:
    """An aggregate snapshot taken at decision time, written once its last event's offset is
    known (`where` is filled by that event's delivery report)."""

    key: bytes
    state: Any  # AuctionState
    partition: int
    where: list[int]


@dataclass
class Transaction:
    """What the open transaction holds besides the records already handed to the producer."""

    started: float = 0.0
    positions: dict[int, int] = field(default_factory=dict)  # commands partition -> next offset
    events_end: dict[int, int] = field(default_factory=dict)  # events partition -> last offset
    snapshots: list[PendingSnapshot] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)

    @property
    def open(self) -> bool:
        return bool(self.started)


def utc_now() -> datetime:
    return datetime.now(UTC)


class HotPath:
    def __init__(
        self,
        settings: Settings,
        options: Options,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.settings, self.options, self.clock = settings, options, clock
        topic = settings.topic
        self.commands, self.events, self.dlq = topic(COMMANDS), topic(EVENTS), topic(DLQ)
        self.snapshots_topic = topic(SNAPSHOTS)
        self.auctions_changelog = topic(AUCTIONS_CHANGELOG)
        self.views_changelog = topic(HIGHEST_BIDS_CHANGELOG)
        self.root = settings.state_dir / "hotpath" / options.instance
        self.group = settings.faust_app_id  # the Faust workers' group: either runs, never both
        self.consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka_bootstrap_servers,
                "group.id": self.group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "session.timeout.ms": int(settings.session_timeout_s * 1000),
                "heartbeat.interval.ms": int(settings.session_timeout_s * 200),
                "fetch.max.bytes": 16 * 1024 * 1024,
                "fetch.wait.max.ms": 10,
                "logger": logging.getLogger("librdkafka"),
            }
        )
        self.producer = command_producer(
            settings.kafka_bootstrap_servers,
            **{
                "transactional.id": f"{self.group}-hotpath-{options.instance}",
                "transaction.timeout.ms": 30_000,
                "linger.ms": 1,
                "batch.size": 256 * 1024,
                "queue.buffering.max.messages": 1_000_000,
                "on_delivery": self._delivered,
            },
        )
        self.read_model = BlockingReadModel(settings) if options.redis else None
        self.partitions: dict[int, PartitionState] = {}
        self._kept: dict[int, PartitionState] = {}  # revoked, maybe re-assigned next
        self.txn = Transaction()
        # Snapshots of committed aggregates, written in the next transaction (see _commit).
        self._snapshots_due: list[PendingSnapshot] = []
        self._events_committed: dict[int, int] = {}  # events partition -> last offset committed
        self._minute, self._bids_in_minute = 0, Counter[bytes]()
        self._stopping = False
        self._wait = min(POLL_S, options.commit_interval_s / 10)

    # --- the loop -------------------------------------------------------------------------

    def run(self, on_batch: Callable[[int], None] | None = None) -> None:
        """Process until `stop()`; every record's outputs and offset commit together."""
        self.producer.init_transactions(KAFKA_TIMEOUT_S)  # fences and aborts our previous self
        self.consumer.subscribe(
            [self.commands],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        try:
            while not self._stopping:
                # consume() returns at a full batch or at the timeout: a short timeout keeps a
                # trickle of commands from waiting for a batch that never fills.
                batch = self.consumer.consume(self.options.batch, self._wait)
                for message in batch:
                    self._handle(message)
                if self.txn.open and (
                    len(batch) < self.options.batch  # caught up: nothing gains from waiting
                    or time.monotonic() - self.txn.started >= self.options.commit_interval_s
                ):
                    self._commit()
                elif (
                    not batch and not self.txn.open and (self._snapshots_due or self.txn.events_end)
                ):
                    # Idle: commit what the last transaction left for the next one (see _commit).
                    self._begin()
                    self._commit()
                if on_batch and batch:
                    on_batch(len(batch))
            self._commit()
            if self._snapshots_due or self.txn.events_end:  # left for a next transaction
                self._begin()
                self._commit()
        finally:
            self.consumer.close()  # leaves the group: its partitions move at once
            self.producer.flush(10)
            for state in (*self.partitions.values(), *self._kept.values()):
                state.close()
            if self.read_model is not None:
                self.read_model.close()

    def stop(self) -> None:
        self._stopping = True

    # --- one command ----------------------------------------------------------------------

    def _handle(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            self._consumer_error(error)
            return
        if not self.txn.open:
            self._begin()
        partition, offset = message.partition() or 0, message.offset() or 0
        self.txn.positions[partition] = offset + 1
        value = message.value() or b""
        try:
            command = decode_command(value)
        except InvalidMessage as exc:
            self._dead_letter(message, exc.reason, exc.message)
            return
        key = command.auction_id.encode()
        if message.key() != key:
            source = f"{message.topic()}/{partition}/{offset}".encode()
            self.producer.produce(
                self.commands, key=key, value=value, headers=[(headers.REROUTED_FROM, source)]
            )
            self.txn.outcomes["rerouted"] += 1
            return
        entry = self.partitions[partition].entry(key, command.auction_id)
        try:
            decided = decide(
                entry.state, command, self.clock(), max_recent=self.settings.recent_commands
            )
        except Exception as exc:  # a bug or a poison record: park it, the partition moves on
            log.exception("command at %s[%s]@%s failed", self.commands, partition, offset)
            self._dead_letter(message, "handler_error", repr(exc))
            return
        if not decided:
            self.txn.outcomes["duplicate"] += 1
            return
        before = entry.state.version
        state, view = entry.state, entry.view
        for event in decided:
            state = evolve(state, event, max_recent=self.settings.recent_commands)
            view = apply(view, event)
        snapshot = aggregate_snapshots.due(
            before, state.version, self.settings.aggregate_snapshot_every
        )
        issued = command.issued_at.timestamp()
        stamp: Headers = [(headers.ISSUED_AT, str(issued).encode())]
        last = len(decided) - 1
        for index, event in enumerate(decided):
            self.txn.events[event.TYPE] += 1
            if isinstance(event, BidAccepted):
                entry.accepted_bids += 1
            extra: dict[str, Any] = {}
            if snapshot and index == last:
                # The snapshot names the offset of its last event: known once it is delivered.
                where: list[int] = []
                self.txn.snapshots.append(PendingSnapshot(key, state, partition, where))
                extra["on_delivery"] = self._reporting_offset_to(where)
            self.producer.produce(
                self.events,
                key=key,
                value=encode_event(event),
                partition=partition,
                headers=stamp,
                **extra,
            )
        entry.state, entry.view, entry.issued_at, entry.changed = state, view, issued, True
        self.txn.outcomes["decided"] += 1

    def _consumer_error(self, error: KafkaError) -> None:
        code = error.code()
        if code == KafkaError._PARTITION_EOF:
            return
        if code == KafkaError.INCONSISTENT_GROUP_PROTOCOL:
            raise HotPathError(
                f"consumer group {self.group} is held by Faust workers: the hot path replaces "
                "them, it cannot run beside them (stop the workers first)"
            )
        if code in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
            raise HotPathError(f"{error.str()}: create the topics first (outbid topics apply)")
        if error.fatal() or not error.retriable():
            raise HotPathError(f"the consumer failed: {error.str()}")
        log.warning("consumer: %s (retrying)", error.str())

    def _dead_letter(self, message: Message, reason: str, error: str) -> None:
        log.warning(
            "dead-lettering %s[%s]@%s: %s: %s",
            message.topic(),
            message.partition(),
            message.offset(),
            reason,
            error,
        )
        self.producer.produce(
            self.dlq,
            key=message.key(),
            value=message.value(),
            headers=[
                *dead_letter_headers(
                    message.topic() or "",
                    message.partition() or 0,
                    message.offset() or 0,
                    reason,
                    error,
                )
            ],
        )
        metrics.DEAD_LETTERS.labels(reason).inc()
        self.txn.outcomes["dead_letter"] += 1

    def _uncommitted(self, events_end: dict[int, int]) -> dict[int, int]:
        done = self._events_committed
        return {p: o for p, o in events_end.items() if o > done.get(p, -1)}

    def _begin(self) -> None:
        self.producer.begin_transaction()
        self.txn.started = time.monotonic()

    def _reporting_offset_to(
        self, where: list[int]
    ) -> Callable[[KafkaError | None, Message], None]:
        def delivered(err: KafkaError | None, msg: Message) -> None:
            self._delivered(err, msg, where)

        return delivered

    def _delivered(
        self, err: KafkaError | None, msg: Message, where: list[int] | None = None
    ) -> None:
        """Delivery report of every record (called from poll/flush, in this thread)."""
        if err is not None:  # the transaction cannot commit: commit_transaction says so
            log.warning("record not delivered to %s: %s", msg.topic(), err)
            return
        if msg.topic() == self.events:
            partition, offset = msg.partition() or 0, msg.offset() or 0
            if offset > self.txn.events_end.get(partition, -1):
                self.txn.events_end[partition] = offset
            if where is not None:
                where.append(offset)

    # --- the transaction ------------------------------------------------------------------

    def _commit(self, *, rewind: bool = True) -> None:
        """Changelogs, snapshots and offsets, then commit; abort on any failure.

        Nothing waits for the records' delivery before the commit (commit_transaction does,
        and fails if any was not delivered): what needs an event's offset, its aggregate
        snapshot and the events topic's group offset, goes into the next transaction.
        """
        if not self.txn.open:
            return
        txn = self.txn
        changed = {p: state.changed() for p, state in self.partitions.items()}
        snapshots, self._snapshots_due = self._snapshots_due, []
        stage = metrics.HOTPATH_COMMIT.labels
        try:
            with stage("tables").time():
                self._write_tables(changed)
                self._write_snapshots(snapshots)
            offsets = [TopicPartition(self.commands, p, o) for p, o in txn.positions.items()]
            events = self._uncommitted(txn.events_end)
            offsets += [TopicPartition(self.events, p, o + 1) for p, o in events.items()]
            if offsets:
                with stage("offsets").time():
                    self.producer.send_offsets_to_transaction(
                        offsets, self.consumer.consumer_group_metadata(), KAFKA_TIMEOUT_S
                    )
            with stage("commit").time():
                self._commit_transaction()
        except KafkaException as exc:
            error = exc.args[0]
            if error.fatal() or not error.txn_requires_abort():
                raise HotPathError(
                    f"Kafka refused the transaction: {error.str()} (another hot path with the "
                    "same --instance, or the broker's transaction state is gone): restart it"
                ) from exc
            log.warning("transaction aborted (%s): re-processing from the committed offsets", error)
            self._snapshots_due = snapshots  # their events are committed: write them next time
            self._abort(rewind=rewind)
            return
        self._events_committed.update(events)
        # Delivery reports (served during the commit, or now) name the events' offsets: the
        # ones not committed yet go into the next transaction.
        self.txn = Transaction(events_end=self._uncommitted(txn.events_end))
        self.producer.poll(0)
        self._snapshots_due = [s for s in txn.snapshots if s.where]
        self._after_commit(changed, txn)

    def _write_tables(self, changed: dict[int, list[tuple[bytes, Entry]]]) -> None:
        """Each changed auction's last state and view, once per transaction."""
        produce = self.producer.produce
        for partition, entries in changed.items():
            for key, entry in entries:
                produce(
                    self.auctions_changelog,
                    key=key,
                    value=encode_state(entry.state),
                    partition=partition,
                )
                if entry.view is not None:
                    produce(
                        self.views_changelog,
                        key=key,
                        value=encode_view(entry.view),
                        partition=partition,
                    )

    def _write_snapshots(self, due: list[PendingSnapshot]) -> None:
        """Aggregate snapshots whose last event is committed, with that event's offset."""
        for snap in due:
            value = aggregate_snapshots.encode(snap.state, snap.partition, snap.where[0])
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

    def _abort(self, *, rewind: bool = True) -> None:
        """Drop the open transaction; with `rewind`, consume again from the committed offsets."""
        self.producer.abort_transaction(KAFKA_TIMEOUT_S)
        for state in self.partitions.values():
            state.rolled_back()
        self.txn = Transaction()
        assigned = [TopicPartition(self.commands, p) for p in self.partitions]
        if rewind and assigned:
            for tp in self.consumer.committed(assigned, timeout=KAFKA_TIMEOUT_S):
                if tp.offset < 0:
                    tp.offset = OFFSET_BEGINNING
                self.consumer.seek(tp)

    def _after_commit(
        self, changed: dict[int, list[tuple[bytes, Entry]]], txn: Transaction
    ) -> None:
        now = time.time()
        metrics.HOTPATH_TRANSACTION_RECORDS.observe(sum(txn.outcomes.values()))
        for outcome, count in txn.outcomes.items():
            metrics.COMMANDS.labels(outcome).inc(count)
        for kind, count in txn.events.items():
            metrics.EVENTS.labels(kind).inc(count)
        if txn.snapshots:
            metrics.AGGREGATE_SNAPSHOTS.inc(len(txn.snapshots))  # taken; written next commit
        views = []
        minute = int(now // 60)
        if minute != self._minute:
            self._minute, self._bids_in_minute = minute, Counter()
        for entries in changed.values():
            for key, entry in entries:
                if entry.issued_at is not None:
                    metrics.COMMAND_TO_PROJECTION.observe(max(0.0, now - entry.issued_at))
                if entry.view is not None:
                    self._bids_in_minute[key] += entry.accepted_bids
                    views.append(
                        (
                            entry.view,
                            entry.issued_at,
                            self._bids_in_minute[key] if entry.accepted_bids else 0,
                        )
                    )
        metrics.PROJECTED.labels("highest_bids", "applied").inc(len(views))
        for state in self.partitions.values():
            state.committed()
        self._to_redis(views)

    def _to_redis(self, views: list[tuple[Any, float | None, int]]) -> None:
        if self.read_model is None or not views:
            return
        read_model = self.read_model
        applied = retry_blocking(
            lambda: read_model.apply_many(views),
            what=f"redis write of {len(views)} view(s)",
            backoff=REDIS_BACKOFF,
            on_retry=lambda *_: metrics.RETRIES.labels("redis").inc(),
        )
        metrics.REDIS_WRITES.labels("applied").inc(applied)
        metrics.REDIS_WRITES.labels("stale").inc(len(views) - applied)
        now = time.time()
        for _view, issued, _bids in views:
            if issued is not None:
                metrics.COMMAND_TO_REDIS.observe(max(0.0, now - issued))

    # --- rebalances -----------------------------------------------------------------------

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # (partitions lost without a revoke, after a session timeout, go to _on_lost instead)
        self._commit(rewind=False)  # still ours: what was processed commits now, nothing is redone
        gone = {tp.partition for tp in partitions}
        # what was left for a next transaction belongs to the partitions' next owner now
        self.txn.events_end = {p: o for p, o in self.txn.events_end.items() if p not in gone}
        self._snapshots_due = [s for s in self._snapshots_due if s.partition not in gone]
        for tp in partitions:
            state = self.partitions.pop(tp.partition, None)
            if state is not None:
                self._kept[tp.partition] = state
        metrics.ASSIGNED.set(len(self.partitions))

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.warning(
            "lost %d partition(s) without a revoke: aborting the open transaction", len(partitions)
        )
        if self.txn.open:
            self.producer.abort_transaction(KAFKA_TIMEOUT_S)
            self.txn = Transaction()
        for tp in partitions:
            state = self.partitions.pop(tp.partition, None)
            if state is not None:
                state.close()
        metrics.ASSIGNED.set(len(self.partitions))

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        metrics.REBALANCES.inc()
        wanted = {tp.partition for tp in partitions}
        for p in list(self._kept):
            if p not in wanted:
                self._kept.pop(p).close()
        fresh = [tp for tp in partitions if tp.partition not in self._kept]
        for tp in partitions:
            if tp.partition in self._kept:  # revoked and given back: nobody else had it between
                self.partitions[tp.partition] = self._kept.pop(tp.partition)
        if fresh:
            started = time.perf_counter()
            # With read_committed this waits until no transaction of a previous owner is pending
            # on the offsets (KIP-447): the changelogs read next then hold all it committed.
            consumer.committed(fresh, timeout=KAFKA_TIMEOUT_S)
            reader = TopicReader(self.settings.kafka_bootstrap_servers)
            try:
                for tp in fresh:
                    self.partitions[tp.partition] = self._recover(reader, tp.partition)
            finally:
                reader.close()
            metrics.RECOVERY.observe(time.perf_counter() - started)
        metrics.ASSIGNED.set(len(self.partitions))

    def _recover(self, reader: TopicReader, partition: int) -> PartitionState:
        state = PartitionState(partition, self.root / str(partition), self.options.cache_size)
        for topic, prefix, table in (
            (self.auctions_changelog, STATE, "auctions"),
            (self.views_changelog, VIEW, "highest_bids"),
        ):
            end = reader.end_offset(topic, partition)
            chunk: list[tuple[bytes, bytes | None]] = []
            for record in reader.read(topic, partition, end):
                if record.key is not None:
                    chunk.append((record.key, record.value))
                if len(chunk) >= 10_000:
                    metrics.RECOVERY_RECORDS.labels(table).inc(state.load_changelog(prefix, chunk))
                    chunk = []
            metrics.RECOVERY_RECORDS.labels(table).inc(state.load_changelog(prefix, chunk))
        if self.read_model is not None:
            # A crash between a commit and its Redis write left Redis behind: catch it up.
            self._to_redis([(view, None, 0) for view in state.views()])
        log.info("partition %d recovered", partition)
        return state
