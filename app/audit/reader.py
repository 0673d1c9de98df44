"""Read a topic partition up to a fixed end offset, committed records only, in bounded memory."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from app.errors import KafkaUnavailableError

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

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
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

    def partitions(self, topic: str) -> list[int]:
        try:
            metadata = self.consumer.list_topics(topic, timeout=15)
        except KafkaException as exc:
            raise KafkaUnavailableError(f"Kafka at {self.bootstrap} did not answer: {exc}") from exc
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
        probe = Consumer(
            {"bootstrap.servers": self.bootstrap, "group.id": group, "enable.auto.commit": False}
        )
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
                    headers: list[tuple[str, bytes | None]] = msg.headers() or []  # type: ignore[assignment]
                    yield Record(
                        partition,
                        offset,
                        msg.key(),
                        msg.value(),
                        {k: v for k, v in headers if v is not None},
                    )
                    if offset >= end - 1:
                        return
        finally:
            self.consumer.unassign()
