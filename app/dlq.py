"""Re-driving dead letters: `outbid dlq replay` after the cause is fixed.

Reads bid-commands-dlq (read_committed) from this replay's committed position up to the end
offsets taken at the start, re-produces each selected record to bid-commands with its original
key and bytes (plus an `outbid.replayed-from` header), and commits the DLQ position in the same
Kafka transaction: a crash mid-replay neither loses nor doubles a record. Each `--reason`
selection has its own consumer group, so replaying one reason leaves the others for later. A
record parked cut short (too big to write again: `outbid.truncated`) is skipped, never re-driven.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from agents.dead_letters import REASON, TRUNCATED
from app.audit.reader import headers_of
from app.engine.kafka import abort_transaction
from app.errors import KafkaUnavailableError
from app.producers import command_producer
from app.retry import Backoff
from app.settings import Settings
from app.topics.spec import COMMANDS, DLQ

log = logging.getLogger(__name__)

COORDINATOR_NOT_READY = frozenset(
    {
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    }
)
REPLAYED_FROM = "outbid.replayed-from"
BATCH = 1_000


@dataclass
class ReplayReport:
    replayed: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)


def replay_group(settings: Settings, reasons: frozenset[str]) -> str:
    suffix = "-".join(sorted(reasons)) if reasons else "all"
    return f"{settings.group_id}-dlq-replay-{suffix}"


def replay(  # noqa: PLR0912 - one loop with its guard clauses
    settings: Settings,
    reasons: frozenset[str] = frozenset(),
    *,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ReplayReport:
    dlq, commands = settings.topic(DLQ), settings.topic(COMMANDS)
    group = replay_group(settings, reasons)
    librdkafka = logging.getLogger("librdkafka")
    consumer = Consumer(
        {
            **settings.kafka_client_config(),
            "group.id": group,
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "logger": librdkafka,
        }
    )
    producer = (
        None
        if dry_run
        else command_producer(settings.kafka_client_config(), **{"transactional.id": group})
    )
    report = ReplayReport()
    try:
        metadata = consumer.list_topics(dlq, timeout=15)
        if dlq not in metadata.topics or metadata.topics[dlq].error is not None:
            raise KafkaUnavailableError(f"no topic {dlq} on {settings.kafka_bootstrap_servers}")
        partitions = sorted(metadata.topics[dlq].partitions)
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(dlq, p), timeout=15, cached=False)[1]
            for p in partitions
        }
        start = _committed(consumer, [TopicPartition(dlq, p) for p in partitions])
        consumer.assign([TopicPartition(dlq, tp.partition, max(tp.offset, 0)) for tp in start])
        positions = {tp.partition: max(tp.offset, 0) for tp in start}
        if producer:
            producer.init_transactions(30)
            producer.begin_transaction()
        in_batch = 0
        while any(positions[p] < ends[p] for p in partitions):
            msg = consumer.poll(0.2)
            if msg is None:
                for tp in consumer.position([TopicPartition(dlq, p) for p in partitions]):
                    positions[tp.partition] = max(positions[tp.partition], tp.offset)
                continue
            offset, partition = int(msg.offset() or 0), int(msg.partition() or 0)
            if msg.error() or offset >= ends[partition]:
                continue
            positions[partition] = offset + 1
            if not _select(msg, reasons, report):
                continue
            if producer:
                producer.produce(
                    commands,
                    key=msg.key(),
                    value=msg.value(),
                    headers=[(REPLAYED_FROM, f"{dlq}/{partition}/{offset}".encode())],
                )
                in_batch += 1
                if in_batch >= BATCH:
                    _commit(producer, consumer, dlq, positions)
                    producer.begin_transaction()
                    in_batch = 0
            if progress:
                progress(1)
        if producer:
            _commit(producer, consumer, dlq, positions)
    except KafkaException as exc:
        if producer:
            _abort(producer)
        raise KafkaUnavailableError(
            f"dead-letter replay failed, nothing committed for this batch: {exc}"
        ) from exc
    finally:
        consumer.close()
    return report


def _abort(producer: Producer) -> None:
    """Abort the batch's transaction; the replay's own error is the one to report."""
    try:
        abort_transaction(producer, 30)
    except KafkaException as exc:  # no transaction open, or the producer is gone
        log.warning("dead-letter replay: the abort failed too: %s", exc)


def _committed(consumer: Consumer, tps: list[TopicPartition]) -> list[TopicPartition]:
    """The group's positions; a new group's coordinator takes a moment to appear (NOT_COORDINATOR)."""
    backoff = Backoff(initial_s=0.2, max_s=2.0, attempts=10)
    for attempt in range(backoff.attempts):
        try:
            return list(consumer.committed(tps, timeout=15))
        except KafkaException as exc:
            error = exc.args[0]
            # librdkafka does not flag these as retriable, but a brand-new group's coordinator
            # is simply not elected yet.
            transient = error.retriable() or error.code() in COORDINATOR_NOT_READY
            if not transient or attempt == backoff.attempts - 1:
                raise
            time.sleep(backoff.delay(attempt))
    raise AssertionError("unreachable")  # pragma: no cover


def _select(msg: Any, reasons: frozenset[str], report: ReplayReport) -> bool:
    headers = headers_of(msg)
    reason = headers.get(REASON, b"unknown").decode(errors="replace")
    if TRUNCATED in headers:  # parked cut short (agents/dead_letters.py): not the original bytes
        report.skipped[f"{reason} (truncated)"] += 1
        return False
    if reasons and reason not in reasons:
        report.skipped[reason] += 1
        return False
    report.replayed[reason] += 1
    return True


def _commit(producer: Producer, consumer: Consumer, dlq: str, positions: dict[int, int]) -> None:
    offsets = [TopicPartition(dlq, p, off) for p, off in positions.items()]
    producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), 30)
    producer.commit_transaction(60)
