"""What the chaos run reads from Kafka at the end: the group's lag, open transactions, and
Kafka's own `kafka-transactions find-hanging` on every broker."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Iterable

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from app.devstack import tools
from app.kafka_config import KafkaConfig

OPEN_TRANSACTIONS_TIMEOUT_S = 90.0  # the engine's transaction.timeout.ms (30 s) and then some
EXACT_LAG_BELOW = 1_000  # a smaller gap is read record by record (markers are not lag)
# find-hanging only looks at transactions whose last write is older than this many minutes. The
# engine's transaction.timeout.ms is 30 s and the broker aborts expired transactions every 10 s
# (transaction.abort.timed.out.transaction.cleanup.interval.ms): anything open after a minute
# is past its timeout. The tool's default of 15 minutes would see nothing in a run this long.
FIND_HANGING_TIMEOUT_MIN = 1
FIND_HANGING_HEADER = (
    "Topic",
    "Partition",
    "ProducerId",
    "ProducerEpoch",
    "CoordinatorEpoch",
    "StartOffset",
    "LastTimestamp",
    "Duration(min)",
)


def lag(kafka: KafkaConfig, group: str, topics: list[str], partitions: int) -> int:
    """Committed records after `group`'s committed offsets (read_committed: transaction markers
    and aborted records are not lag). A gap of EXACT_LAG_BELOW offsets or more counts as offsets
    (an upper bound, while catching up)."""
    consumer = Consumer(
        {
            **kafka,
            "group.id": group,
            "enable.auto.commit": False,
            "enable.partition.eof": True,  # "nothing after here" even when only markers follow
            "isolation.level": "read_committed",
            "logger": logging.getLogger("librdkafka"),
        }
    )
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(partitions)]
        total = 0
        for tp in consumer.committed(tps, timeout=15):
            low, high = consumer.get_watermark_offsets(tp, timeout=15, cached=False)
            position = tp.offset if tp.offset >= 0 else low
            gap = high - position
            if 0 < gap < EXACT_LAG_BELOW:
                total += _records_between(consumer, tp.topic, tp.partition, position, high)
            else:
                total += max(0, gap)
        return total
    finally:
        consumer.close()


def _records_between(consumer: Consumer, topic: str, partition: int, start: int, end: int) -> int:
    """Records a read_committed reader gets in [start, end); `end - start` if it cannot tell."""
    consumer.assign([TopicPartition(topic, partition, start)])
    count, deadline = 0, time.monotonic() + 15
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    return count
                continue
            offset = msg.offset() or 0
            if offset >= end:
                return count
            count += 1
            if offset == end - 1:
                return count
        return end - start
    finally:
        consumer.unassign()


def open_partitions(kafka: KafkaConfig, topics: list[str]) -> list[str]:
    """Partitions whose last stable offset is below their high watermark (a transaction open)."""
    readers = [
        Consumer(
            {
                **kafka,
                "group.id": f"outbid-chaos-lso-{level}",
                "isolation.level": level,
                "logger": logging.getLogger("librdkafka"),
            }
        )
        for level in ("read_committed", "read_uncommitted")
    ]
    try:
        found = []
        for topic in topics:
            metadata = readers[0].list_topics(topic, timeout=15).topics[topic]
            for partition in metadata.partitions:
                tp = TopicPartition(topic, partition)
                stable = readers[0].get_watermark_offsets(tp, timeout=15, cached=False)[1]
                high = readers[1].get_watermark_offsets(tp, timeout=15, cached=False)[1]
                if stable < high:
                    found.append(f"{topic}[{partition}]")
        return found
    finally:
        for reader in readers:
            reader.close()


def settle_transactions(
    kafka: KafkaConfig, topics: list[str], timeout_s: float = OPEN_TRANSACTIONS_TIMEOUT_S
) -> float:
    """Wait until no partition of `topics` has an open transaction; the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            if not open_partitions(kafka, topics):
                break
        except KafkaException:
            pass  # a leader moving: ask again
        time.sleep(1)
    return time.monotonic() - started if time.monotonic() - started > 1 else 0.0


def parse_find_hanging(output: str) -> list[dict[str, str]]:
    """The rows of `kafka-transactions find-hanging`'s table (its header alone: none)."""
    lines = [line.split() for line in output.splitlines() if line.strip()]
    if not lines:
        return []
    if tuple(lines[0]) != FIND_HANGING_HEADER:
        raise ValueError(f"unexpected find-hanging output: {output[:300]!r}")
    rows = []
    for cells in lines[1:]:
        if len(cells) != len(FIND_HANGING_HEADER):
            raise ValueError(f"unexpected find-hanging row: {' '.join(cells)!r}")
        rows.append(dict(zip(FIND_HANGING_HEADER, cells, strict=True)))
    return rows


def find_hanging(
    bootstrap: str, brokers: Iterable[int], attempts: int = 3
) -> tuple[list[dict[str, str]], list[str]]:
    """Run Kafka's own `kafka-transactions find-hanging --broker-id N` (what `outbid kafka
    kafka-transactions ...` runs) against every broker: (hanging transactions, brokers it could
    not ask). Every replica keeps producer state, so each broker is asked about its own."""
    hanging: list[dict[str, str]] = []
    errors: list[str] = []
    for broker in brokers:
        args = [
            "--bootstrap-server",
            bootstrap,
            "find-hanging",
            "--broker-id",
            str(broker),
            "--max-transaction-timeout",
            str(FIND_HANGING_TIMEOUT_MIN),
        ]
        problem = ""
        for attempt in range(attempts):
            if attempt:
                time.sleep(5)
            done = subprocess.run(
                tools.tool_command("kafka-transactions", args),
                capture_output=True,
                text=True,
                timeout=180,
                check=False,
            )
            if done.returncode != 0:
                problem = f"exit {done.returncode}: {(done.stderr or done.stdout).strip()[-300:]}"
                continue
            try:
                rows = parse_find_hanging(done.stdout)
            except ValueError as exc:
                problem = str(exc)
                continue
            hanging += [{"broker": str(broker), **row} for row in rows]
            break
        else:
            errors.append(f"broker {broker}: find-hanging failed ({problem})")
    return hanging, errors
