"""The Kafka side of `outbid bench throughput`: the ceiling loop, senders, progress and latency.

All of it uses confluent-kafka directly (librdkafka), never Faust: these are the measuring
instruments, and they must cost the machine as little as possible while the workers run.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from app import headers
from app.engine.kafka import PRODUCER_BATCHING
from app.errors import KafkaUnavailableError
from app.kafka_config import KafkaConfig, bootstrap_of
from app.producers import command_producer
from bench.throughput_stats import CeilingRun, ViewMatcher, iso_stamp, restamp

log = logging.getLogger(__name__)
Record = tuple[bytes | None, bytes]
ISSUED_AT_HEADER = headers.ISSUED_AT  # what agents/step.py puts on every event record
BATCH = 1_000
POLL_S = 0.1  # as app/engine/loop.py: the longest consume() waits for a batch to fill


def _consumer(kafka: KafkaConfig, group: str, **extra: object) -> Consumer:
    return Consumer(
        {
            **kafka,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",  # what the workers and every reader see
            "logger": logging.getLogger("librdkafka"),
            **extra,
        }
    )


# --- sending ------------------------------------------------------------------------------


def send_all(kafka: KafkaConfig, topic: str, records: Sequence[Record]) -> float:
    """Every record as fast as the producer takes them; returns seconds until all are acked."""
    producer = command_producer(
        kafka, **{"linger.ms": 5, "queue.buffering.max.messages": 1_000_000}
    )
    started = time.perf_counter()
    for key, value in records:
        _produce(producer, topic, key, value)
    _flush(producer, kafka)
    return time.perf_counter() - started


def _produce(producer: Producer, topic: str, key: bytes | None, value: bytes) -> None:
    while True:
        try:
            producer.produce(topic, key=key, value=value)
        except BufferError:  # local queue full: let it drain
            producer.poll(0.05)
        else:
            producer.poll(0)
            return


def _flush(producer: Producer, kafka: KafkaConfig) -> None:
    left = producer.flush(60)
    if left:
        raise KafkaUnavailableError(
            f"{left} command(s) still unsent after 60 s to {bootstrap_of(kafka)}"
        )


class PacedSender:
    """Sends commands at a rate, each stamped issued_at = the moment it is handed to the producer.

    linger.ms=1: a latency-minded client, not a batch loader. One producer for every level,
    connected before the first: a new producer's first records would wait for its connections
    and its producer id, and that wait would count as the engine's latency.
    """

    def __init__(self, kafka: KafkaConfig, topic: str) -> None:
        self.kafka, self.topic = kafka, topic
        self.producer = command_producer(kafka, **{"linger.ms": 1})
        self.producer.list_topics(topic, timeout=15)  # connects, learns the partition leaders

    def send(self, records: Sequence[Record], rate: float) -> tuple[int, float]:
        """Returns (sent, seconds from the first to the last record handed over)."""
        started = time.perf_counter()
        sent = 0
        while sent < len(records):
            due = min(len(records), int((time.perf_counter() - started) * rate) + 1)
            while sent < due:
                key, value = records[sent]
                _produce(self.producer, self.topic, key, restamp(value, iso_stamp(time.time())))
                sent += 1
            time.sleep(0.001)
        seconds = time.perf_counter() - started
        _flush(self.producer, self.kafka)
        return sent, seconds


# --- the ceiling: consume -> decode -> encode -> produce, committed as the engine commits ----


def to_event(command: dict[str, object], offset: int) -> bytes:
    """An event-sized record (about the ~250 bytes of a BidAccepted) from a decoded command."""
    return orjson.dumps(
        {
            "type": "BidAccepted",
            "schema_version": 2,
            "auction_id": command.get("auction_id"),
            "seq": offset,
            "event_id": command.get("command_id"),
            "command_id": command.get("command_id"),
            "occurred_at": command.get("issued_at"),
            "bidder_id": command.get("bidder_id"),
            "amount": command.get("amount"),
            "currency": command.get("currency"),
        }
    )


@dataclass(frozen=True, slots=True)
class Cadence:
    """When the engine commits (app/engine/loop.py): as soon as a consume() returns less than a
    full batch (caught up), and at the latest `transaction_max_s` after the transaction began."""

    transaction_max_s: float
    consume_batch: int

    @property
    def wait_s(self) -> float:
        return min(POLL_S, self.transaction_max_s / 10)

    def due(self, batch: int, age_s: float) -> bool:
        return batch < self.consume_batch or age_s >= self.transaction_max_s


def passthrough(
    kafka: KafkaConfig,
    source: str,
    sink: str,
    expected: int,
    cadence: Cadence,
    *,
    transactional: bool,
    timeout_s: float = 300.0,
) -> CeilingRun:
    """Read `expected` records of `source` and write one event each to `sink`, with the engine's
    clients and cadence: read_committed, and (transactional) the output plus the input offsets
    committed in one transaction whenever the engine would commit. Timed from the first record
    read to the last commit."""
    group = f"bench-ceiling-{uuid.uuid4().hex[:8]}"
    # the engine's fetch settings (app/engine/kafka.py)
    consumer = _consumer(
        kafka, group, **{"fetch.max.bytes": 16 * 1024 * 1024, "fetch.wait.max.ms": 10}
    )
    extra: dict[str, object] = dict(PRODUCER_BATCHING)  # the engine's producer settings
    if transactional:
        extra["transactional.id"] = group
    producer = command_producer(kafka, **extra)
    try:
        consumer.subscribe([source])
        if transactional:
            producer.init_transactions(30)
        done, transactions = 0, 0
        first = last_commit = opened = 0.0  # opened: when the open transaction began (0: none)
        deadline = time.monotonic() + timeout_s
        while done < expected:
            if time.monotonic() > deadline:
                raise KafkaUnavailableError(
                    f"ceiling loop read {done}/{expected} records of {source} in {timeout_s:.0f}s"
                )
            batch = consumer.consume(cadence.consume_batch, cadence.wait_s)
            for msg in batch:
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaException(error)
                if not first:
                    first = time.perf_counter()
                if not opened:
                    if transactional:
                        producer.begin_transaction()
                    opened = time.monotonic()
                _produce_to(producer, sink, msg, to_event(_decoded(msg), msg.offset() or 0))
                done += 1
            if opened and (done >= expected or cadence.due(len(batch), time.monotonic() - opened)):
                _commit(producer, consumer, transactional, final=done >= expected)
                opened, transactions = 0.0, transactions + 1
                last_commit = time.perf_counter()
        return CeilingRun(transactional, done, last_commit - first, transactions)
    finally:
        consumer.close()


def _decoded(msg: Message) -> dict[str, object]:
    try:
        command = orjson.loads(msg.value() or b"")
    except orjson.JSONDecodeError:
        return {}
    return command if isinstance(command, dict) else {}


def _produce_to(producer: Producer, topic: str, msg: Message, value: bytes) -> None:
    while True:
        try:
            producer.produce(
                topic,
                key=msg.key(),
                value=value,
                partition=msg.partition() or 0,  # co-partitioned: the same partition, as the step
                headers=[(ISSUED_AT_HEADER, b"0")],
            )
        except BufferError:
            producer.poll(0.05)
        else:
            producer.poll(0)
            return


def _commit(producer: Producer, consumer: Consumer, transactional: bool, *, final: bool) -> None:
    if transactional:
        producer.send_offsets_to_transaction(
            consumer.position(consumer.assignment()), consumer.consumer_group_metadata(), 30
        )
        producer.commit_transaction(60)
    elif final:
        producer.flush(60)
        try:
            consumer.commit(asynchronous=False)
        except KafkaException as exc:
            # an asynchronous commit before this one already covered every offset: done
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                raise
    else:
        producer.poll(0)
        consumer.commit(asynchronous=True)


# --- progress: the workers' committed offsets --------------------------------------------


@dataclass(frozen=True, slots=True)
class Progress:
    at: float  # time.perf_counter()
    commands_done: int  # bid-commands offsets committed by the workers' group


class OffsetWatcher:
    """Polls what the workers' consumer group has *committed*: a command's offset commits in the
    transaction that carries its events, table changelogs and aggregate snapshot."""

    def __init__(self, kafka: KafkaConfig, group: str, commands: str, partitions: int):
        self._consumer = _consumer(kafka, group)  # never subscribes: only reads offsets
        self._commands = [TopicPartition(commands, p) for p in range(partitions)]

    def sample(self) -> Progress:
        committed = self._consumer.committed(self._commands, timeout=15)
        return Progress(time.perf_counter(), sum(max(tp.offset, 0) for tp in committed))

    def wait(
        self,
        commands_total: int,
        timeout_s: float,
        on_sample: Callable[[Progress], None] | None = None,
        interval_s: float = 0.1,
    ) -> list[Progress]:
        """Samples until every command is committed."""
        samples: list[Progress] = []
        deadline = time.monotonic() + timeout_s
        while True:
            p = self.sample()
            samples.append(p)
            if on_sample:
                on_sample(p)
            if p.commands_done >= commands_total:
                return samples
            if time.monotonic() > deadline:
                raise KafkaUnavailableError(
                    f"the workers committed {p.commands_done}/{commands_total} commands in "
                    f"{timeout_s:.0f}s: see the worker logs"
                )
            time.sleep(interval_s)

    def close(self) -> None:
        self._consumer.close()


# --- latency: a read_committed reader of the events and of the view changelog -------------


class LatencyCollector(threading.Thread):
    """Sees each event and each view record of the `highest_bids` changelog when it becomes
    readable (its transaction committed) and subtracts the command's issued_at (the
    `outbid.issued-at` header the step puts on the event); ViewMatcher pairs events and views."""

    def __init__(self, kafka: KafkaConfig, events: str, views: str, partitions: int) -> None:
        super().__init__(name="latency-collector", daemon=True)
        self._consumer = _consumer(
            kafka, f"bench-latency-{uuid.uuid4().hex[:8]}", **{"fetch.wait.max.ms": 10}
        )
        self._events_topic, self._views_topic = events, views
        self._partitions = partitions
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._views = ViewMatcher()  # (issued_at, view seen_at) in its samples
        self.event_samples: list[tuple[float, float]] = []  # (issued_at, seen_at)
        self.error: BaseException | None = None

    def start_at_end(self) -> None:
        tps = []
        for topic in (self._events_topic, self._views_topic):
            for p in range(self._partitions):
                _low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=15, cached=False
                )
                tps.append(TopicPartition(topic, p, high))
        self._consumer.assign(tps)
        self.start()

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                # consume() waits for a full batch or the timeout: keep the timeout short, or a
                # record's "seen" time is late by up to that much
                messages = self._consumer.consume(BATCH, 0.005)
                seen = time.time()
                for msg in messages:
                    if not msg.error():
                        self._record(msg, seen)
        except BaseException as exc:  # reported by the main thread, never lost in a thread
            self.error = exc
        finally:
            self._consumer.close()

    def _record(self, msg: Message, seen: float) -> None:
        try:
            body = orjson.loads(msg.value() or b"")
            auction, seq = str(body["auction_id"]), int(body["seq"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return
        with self._lock:
            if msg.topic() == self._events_topic:
                issued = _issued_at(msg.headers() or [])
                if issued is not None:
                    self.event_samples.append((issued, seen))
                    self._views.event(auction, seq, issued)
            else:
                self._views.view(auction, seq, seen)

    def window(self, start: float, end: float) -> tuple[list[float], list[float]]:
        """Latencies (s) of commands issued in [start, end]: (event committed, view committed)."""
        with self._lock:
            events = [s - i for i, s in self.event_samples if start <= i <= end]
            views = [s - i for i, s in self._views.samples if start <= i <= end]
        return events, views

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


def _issued_at(headers: Any) -> float | None:
    for name, value in headers:
        if name == ISSUED_AT_HEADER and value:
            try:
                return float(value)
            except ValueError:
                return None
    return None
