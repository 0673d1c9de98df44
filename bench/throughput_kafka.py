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
from app.errors import KafkaUnavailableError
from app.producers import command_producer
from bench.throughput_stats import iso_stamp, restamp

log = logging.getLogger(__name__)
Record = tuple[bytes | None, bytes]
ISSUED_AT_HEADER = headers.ISSUED_AT  # what agents/bids.py puts on every event record
BATCH = 1_000


def _consumer(bootstrap: str, group: str, **extra: object) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",  # what the workers and every reader see
            "logger": logging.getLogger("librdkafka"),
            **extra,
        }
    )


def partitions_of(bootstrap: str, topic: str) -> int:
    probe = _consumer(bootstrap, f"bench-probe-{uuid.uuid4().hex}")
    try:
        meta = probe.list_topics(topic, timeout=15).topics[topic]
        if meta.error is not None:
            raise KafkaUnavailableError(f"topic {topic} is not readable: {meta.error}")
        return len(meta.partitions)
    finally:
        probe.close()


# --- sending ------------------------------------------------------------------------------


def send_all(bootstrap: str, topic: str, records: Sequence[Record]) -> float:
    """Every record as fast as the producer takes them; returns seconds until all are acked."""
    producer = command_producer(
        bootstrap, **{"linger.ms": 5, "queue.buffering.max.messages": 1_000_000}
    )
    started = time.perf_counter()
    for key, value in records:
        _produce(producer, topic, key, value)
    _flush(producer, bootstrap)
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


def _flush(producer: Producer, bootstrap: str) -> None:
    left = producer.flush(60)
    if left:
        raise KafkaUnavailableError(f"{left} command(s) still unsent after 60 s to {bootstrap}")


def send_paced(
    bootstrap: str, topic: str, records: Sequence[Record], rate: float
) -> tuple[int, float]:
    """Send `records` at `rate`/s, each stamped issued_at = the moment it is handed to the producer.

    Returns (sent, seconds). linger.ms=1: a latency-minded client, not a batch loader.
    """
    producer = command_producer(bootstrap, **{"linger.ms": 1})
    started = time.perf_counter()
    sent = 0
    while sent < len(records):
        due = min(len(records), int((time.perf_counter() - started) * rate) + 1)
        while sent < due:
            key, value = records[sent]
            _produce(producer, topic, key, restamp(value, iso_stamp(time.time())))
            sent += 1
        time.sleep(0.001)
    seconds = time.perf_counter() - started
    _flush(producer, bootstrap)
    return sent, seconds


# --- the ceiling: a minimal consume -> decode -> encode -> produce loop --------------------


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


def passthrough(
    bootstrap: str,
    source: str,
    sink: str,
    expected: int,
    *,
    transactional: bool,
    commit_interval_s: float,
    timeout_s: float = 300.0,
) -> tuple[int, float]:
    """Read `expected` records of `source` and write one event each to `sink`, like the pipeline:
    read_committed, and (transactional) the output plus the input offsets committed in one
    transaction every `commit_interval_s`. Returns (records, seconds from first read to the
    last commit)."""
    group = f"bench-ceiling-{uuid.uuid4().hex[:8]}"
    consumer = _consumer(bootstrap, group, **{"fetch.max.bytes": 16 * 1024 * 1024})
    extra: dict[str, object] = {"linger.ms": 5, "batch.size": 256 * 1024}  # as the workers'
    if transactional:
        extra["transactional.id"] = group
    producer = command_producer(bootstrap, **extra)
    try:
        consumer.subscribe([source])
        if transactional:
            producer.init_transactions(30)
            producer.begin_transaction()
        done, first, last_commit = 0, 0.0, 0.0
        deadline = time.monotonic() + timeout_s
        while done < expected:
            if time.monotonic() > deadline:
                raise KafkaUnavailableError(
                    f"ceiling loop read {done}/{expected} records of {source} in {timeout_s:.0f}s"
                )
            messages = consumer.consume(BATCH, 0.5)
            for msg in messages:
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaException(error)
                if not first:
                    first = last_commit = time.perf_counter()
                try:
                    command = orjson.loads(msg.value() or b"")
                except orjson.JSONDecodeError:
                    command = {}
                if not isinstance(command, dict):
                    command = {}
                _produce_to(producer, sink, msg, to_event(command, msg.offset() or 0))
                done += 1
            if first and (
                time.perf_counter() - last_commit >= commit_interval_s or done >= expected
            ):
                _commit(producer, consumer, transactional, final=done >= expected)
                last_commit = time.perf_counter()
        return done, last_commit - first
    finally:
        consumer.close()


def _produce_to(producer: Producer, topic: str, msg: Message, value: bytes) -> None:
    while True:
        try:
            producer.produce(
                topic,
                key=msg.key(),
                value=value,
                partition=msg.partition() or 0,  # co-partitioned: the same partition, as the agent
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
        if not final:
            producer.begin_transaction()
    elif final:
        producer.flush(60)
        consumer.commit(asynchronous=False)
    else:
        producer.poll(0)
        consumer.commit(asynchronous=True)


# --- progress: the workers' committed offsets --------------------------------------------


@dataclass(frozen=True, slots=True)
class Progress:
    at: float  # time.perf_counter()
    commands_done: int  # bid-commands offsets committed by the workers' group
    events_written: int  # auction-events end offsets (transaction markers included)
    events_pending: int  # events not yet committed by the projection (markers excluded)


class OffsetWatcher:
    """Polls what the workers' consumer group has *committed* (under exactly_once: a command's
    offset commits with its events and state, an event's with its projected view)."""

    def __init__(self, bootstrap: str, group: str, commands: str, events: str, partitions: int):
        self._consumer = _consumer(bootstrap, group)  # never subscribes: only reads offsets
        self._commands = [TopicPartition(commands, p) for p in range(partitions)]
        self._events = [TopicPartition(events, p) for p in range(partitions)]

    def sample(self) -> Progress:
        committed = self._consumer.committed(self._commands + self._events, timeout=15)
        by_tp = {(tp.topic, tp.partition): max(tp.offset, 0) for tp in committed}
        done = sum(by_tp[(tp.topic, tp.partition)] for tp in self._commands)
        written = pending = 0
        for tp in self._events:
            _low, high = self._consumer.get_watermark_offsets(tp, timeout=15, cached=False)
            written += high
            # A transactional partition ends with a commit marker the projection never "reads".
            pending += max(0, high - by_tp[(tp.topic, tp.partition)] - 1)
        return Progress(time.perf_counter(), done, written, pending)

    def wait(
        self,
        commands_total: int,
        timeout_s: float,
        on_sample: Callable[[Progress], None] | None = None,
        interval_s: float = 0.25,
    ) -> list[Progress]:
        """Samples until every command is committed and every event projected."""
        samples: list[Progress] = []
        deadline = time.monotonic() + timeout_s
        while True:
            p = self.sample()
            samples.append(p)
            if on_sample:
                on_sample(p)
            if p.commands_done >= commands_total and p.events_pending == 0:
                return samples
            if time.monotonic() > deadline:
                raise KafkaUnavailableError(
                    f"the workers processed {p.commands_done}/{commands_total} commands "
                    f"({p.events_pending} events unprojected) in {timeout_s:.0f}s: see the worker logs"
                )
            time.sleep(interval_s)

    def close(self) -> None:
        self._consumer.close()


# --- latency: a read_committed reader of the events and of the view changelog -------------


class LatencyCollector(threading.Thread):
    """Sees each event when it becomes readable (its decide transaction committed) and each view
    when its changelog record does (the projection's transaction committed), and subtracts the
    command's issued_at (the `outbid.issued-at` header the handler copies onto the event)."""

    def __init__(self, bootstrap: str, events: str, views: str, partitions: int) -> None:
        super().__init__(name="latency-collector", daemon=True)
        self._consumer = _consumer(
            bootstrap, f"bench-latency-{uuid.uuid4().hex[:8]}", **{"fetch.wait.max.ms": 10}
        )
        self._events, self._views = events, views
        self._partitions = partitions
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._issued: dict[tuple[str, int], float] = {}
        self._viewed: dict[tuple[str, int], float] = {}
        self.event_samples: list[tuple[float, float]] = []  # (issued_at, seen_at)
        self.view_samples: list[tuple[float, float]] = []
        self.error: BaseException | None = None

    def start_at_end(self) -> None:
        tps = []
        for topic in (self._events, self._views):
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
            key = (str(body["auction_id"]), int(body["seq"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return
        with self._lock:
            if msg.topic() == self._events:
                issued = _issued_at(msg.headers() or [])
                if issued is None:
                    return
                self.event_samples.append((issued, seen))
                viewed = self._viewed.pop(key, None)
                if viewed is None:
                    self._issued[key] = issued
                else:  # the view record arrived first (another partition's fetch was faster)
                    self.view_samples.append((issued, viewed))
            else:
                issued = self._issued.pop(key, None)
                if issued is None:
                    self._viewed[key] = seen
                else:
                    self.view_samples.append((issued, seen))

    def window(self, start: float, end: float) -> tuple[list[float], list[float]]:
        """Latencies (s) of commands issued in [start, end]: (event committed, view committed)."""
        with self._lock:
            events = [s - i for i, s in self.event_samples if start <= i <= end]
            views = [s - i for i, s in self.view_samples if start <= i <= end]
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
