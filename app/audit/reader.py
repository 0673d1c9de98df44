"""Read a topic partition up to a fixed end offset, committed records only, in bounded memory."""

from __future__ import annotations

import ctypes
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from app.errors import KafkaUnavailableError
from app.kafka_config import KafkaConfig, bootstrap_of, unavailable
from app.topics.admin import admin_client
from app.topics.incarnation import Incarnation, incarnations

# Short waits: a read ends with an empty poll when its last offset is a transaction marker
# (never delivered), and recovery reads up to 3 tables x every assigned partition in a row.
POLL_S = 0.02
# Without a record while short of the end: the broker is gone. Longer than the transaction
# timeout, so a dead producer's open transaction (aborted by the broker after 30 s) is waited out.
STALL_S = 90.0
BATCH = 5000
END_OFFSET_ATTEMPTS = 10
LEADERLESS = (
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
)


@dataclass(frozen=True, slots=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]


class TopicReader:
    """One consumer (no group membership, no commits) for the auditor's sequential reads."""

    def __init__(self, kafka: KafkaConfig) -> None:
        self.kafka = kafka
        self.bootstrap = bootstrap_of(kafka)
        self._incarnations: dict[str, Incarnation] = {}
        self.consumer = Consumer(
            {
                **kafka,
                "group.id": f"outbid-verify-{uuid.uuid4().hex}",  # never committed: offsets unused
                "enable.auto.commit": False,
                "isolation.level": "read_committed",  # aborted transactions are not the record
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 20,  # many short sequential reads: do not idle 500 ms on each
                "logger": logging.getLogger("librdkafka"),
            }
        )

    def close(self) -> None:
        self.consumer.close()

    def incarnation(self, topic: str) -> Incarnation:
        """The live topic's cluster and topic id (app/topics/incarnation.py), asked once per reader."""
        if topic not in self._incarnations:
            self._incarnations.update(incarnations(admin_client(self.kafka), [topic]))
        return self._incarnations[topic]

    def partitions(self, topic: str) -> list[int]:
        try:
            metadata = self.consumer.list_topics(topic, timeout=15)
        except KafkaException as exc:
            raise unavailable(self.kafka, exc) from exc
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            raise KafkaUnavailableError(
                f"topic {topic} does not exist on {self.bootstrap} (outbid topics apply)"
            )
        return sorted(found.partitions)

    def end_offset(self, topic: str, partition: int) -> int:
        """The last stable offset now: the bound of this audit for that partition.

        Retried while the partition has no leader (a topic just created, a broker restarting):
        librdkafka does not flag NOT_LEADER_FOR_PARTITION as retriable here.
        """
        for attempt in range(END_OFFSET_ATTEMPTS):
            try:
                _, high = self.consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=15, cached=False
                )
                return int(high)
            except KafkaException as exc:
                error = exc.args[0]
                transient = error.retriable() or error.code() in LEADERLESS
                if not transient or attempt == END_OFFSET_ATTEMPTS - 1:
                    raise
                time.sleep(min(0.1 * 2**attempt, 2.0))
        raise AssertionError("unreachable")

    def committed(self, group: str, topic: str, partitions: list[int]) -> dict[int, int]:
        probe = Consumer({**self.kafka, "group.id": group, "enable.auto.commit": False})
        try:
            found = probe.committed([TopicPartition(topic, p) for p in partitions], timeout=15)
        finally:
            probe.close()
        return {tp.partition: tp.offset for tp in found if tp.offset >= 0}

    def read(self, topic: str, partition: int, end: int, *, start: int = 0) -> Iterator[Record]:
        """Every committed record of `topic[partition]` from `start` up to (below) `end`."""
        if end <= start:
            return
        tp = TopicPartition(topic, partition, start)
        self.consumer.assign([tp])
        idle_since: float | None = None
        try:
            while True:
                batch = self.consumer.consume(BATCH, POLL_S)  # one call per batch, not per record
                if not batch:
                    position = self.consumer.position([TopicPartition(topic, partition)])[0].offset
                    if position >= end:  # transaction markers take offsets but are never delivered
                        return
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since >= STALL_S:
                        raise KafkaUnavailableError(
                            f"reading {topic}[{partition}] stalled at offset {position} of {end}"
                        )
                    continue
                idle_since = None
                for msg in batch:
                    if msg.error():
                        continue
                    offset = int(msg.offset() or 0)
                    if offset >= end:
                        return
                    yield Record(partition, offset, msg.key(), msg.value(), headers_of(msg))
                    if offset >= end - 1:
                        return
        finally:
            self.consumer.unassign()


def headers_of(msg: Message) -> dict[str, bytes]:
    """The record's headers that have a value (of a repeated name, the last); none at all when a
    name is not UTF-8, which Kafka allows and `kcat -H` sends.

    confluent-kafka 2.x (c_headers_to_py, confluent_kafka.c) returns such headers as a list with
    a NULL where the name should be and the UnicodeDecodeError left pending: touching the list
    crashes the interpreter (SIGSEGV), and the error is raised by whatever runs next. A ctypes
    call to CPython checks the error indicator on return (PyDLL) and raises it here, before the
    list is used.
    """
    try:
        headers: list[tuple[str, bytes | None]] = msg.headers() or []  # type: ignore[assignment]
        _error_pending()
    except UnicodeDecodeError:
        return {}
    return {k: v for k, v in headers if v is not None}


_error_pending = ctypes.pythonapi.PyErr_Occurred
_error_pending.restype = ctypes.c_void_p  # the exception's type, unused: the call raises it
