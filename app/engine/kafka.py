"""The engine's Kafka clients, configured in one place (each non-obvious setting with its reason)."""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import quote, unquote

from confluent_kafka import Consumer, KafkaException, Producer

from app.settings import Settings

log = logging.getLogger(__name__)

CLIENT_ID_PREFIX = "outbid-worker "  # + the worker's web URL, percent-encoded
# One abort_transaction() call (see abort_transaction below). A healthy abort takes 2-20 ms, or
# about 500 when librdkafka bumps the epoch after it.
ABORT_ATTEMPT_S = 1.0

# How the worker's producer batches and retries (the bench's loops use the same, to be comparable).
PRODUCER_BATCHING: dict[str, Any] = {
    # 20 ms, not 1: under a backlog a 1 ms linger sent a produce request every millisecond with a
    # few records per partition, and the broker's per-request work competed with the workers for
    # a small machine's cores (docs/benchmarks.md, "Levers tried"). A caught-up worker does not
    # wait for it: the loop commits as soon as it has caught up, and commit_transaction() sends
    # what is lingering at once (tests/integration/test_producer_batching.py).
    "linger.ms": 20,
    "batch.size": 256 * 1024,
    "queue.buffering.max.messages": 1_000_000,
    # 10 ms, not librdkafka's 100: a transaction begun right after a commit finds the previous
    # one's markers still being written, and its AddOffsetsToTxn is answered
    # CONCURRENT_TRANSACTIONS; librdkafka asks again after this backoff. Back-to-back
    # transactions spent 100 ms in the offsets stage with 100, 14 ms with 10 (docs/benchmarks.md,
    # "Levers tried"). Other retries still back off exponentially up to retry.backoff.max.ms.
    "retry.backoff.ms": 10,
}


def client_id(url: str) -> str:
    """The consumer's client id carries the worker's web URL: any worker reads who owns which
    partition, and where to ask, from the group itself (app/engine/owners.py)."""
    return CLIENT_ID_PREFIX + quote(url, safe="")


def url_of(client: str) -> str | None:
    if not client.startswith(CLIENT_ID_PREFIX):
        return None
    return unquote(client[len(CLIENT_ID_PREFIX) :])


def consumer(settings: Settings, instance: str, url: str) -> Consumer:
    return Consumer(
        {
            **settings.kafka_client_config(),
            "group.id": settings.group_id,
            "client.id": client_id(url),
            # Static membership (KIP-345): a restart inside the session timeout gets the same
            # partitions back without a rebalance.
            "group.instance.id": instance,
            # Incremental rebalances (KIP-429): a joining worker takes only the partitions it is
            # given; the others keep processing theirs.
            "partition.assignment.strategy": "cooperative-sticky",
            "enable.auto.commit": False,  # offsets commit inside the transaction (KIP-447)
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",  # aborted commands are not commands
            "session.timeout.ms": int(settings.session_timeout_s * 1000),
            "heartbeat.interval.ms": int(settings.session_timeout_s * 200),
            # Batches of any codec (gzip, snappy, lz4, zstd) are decoded: the wheel's librdkafka is
            # built with all four (tests/e2e/test_codecs.py). A batch larger than the fetch limits
            # still comes back whole (KIP-74), and bid-commands' max.message.bytes bounds it.
            "fetch.max.bytes": 16 * 1024 * 1024,
            # A fetch waits up to 10 ms for 256 KiB rather than returning at the first byte: under
            # a steady trickle the broker served one fetch per producer request (~1,000/s at
            # 3,000 commands/s), and on a small machine its CPU is the worker's latency.
            "fetch.min.bytes": 256 * 1024,
            "fetch.wait.max.ms": 10,  # a trickle of commands must not wait 500 ms for a batch
            "logger": logging.getLogger("librdkafka"),
        }
    )


def producer(settings: Settings, instance: str) -> Producer:
    config: dict[str, Any] = {
        **settings.kafka_client_config(),
        # Stable per worker: a restarted worker fences its killed predecessor's open transaction.
        "transactional.id": f"{settings.group_id}-{instance}",
        "transaction.timeout.ms": 30_000,
        # Re-routed commands must land where the Java client and kcat (murmur2) put the key.
        "partitioner": "murmur2_random",
        "socket.nagle.disable": True,
        **PRODUCER_BATCHING,
        "logger": logging.getLogger("librdkafka"),
    }
    return Producer(config)


def abort_transaction(producer: Producer, timeout_s: float) -> None:
    """Abort the open transaction in calls of at most ABORT_ATTEMPT_S, until `timeout_s`.

    One long call can deadlock (librdkafka 2.16, measured on this machine with the settings above):
    the abort purges the records still queued; a partition's batch that was in flight behind a
    purged one then fails with OUT_OF_ORDER_SEQUENCE_NUMBER, and librdkafka holds that partition's
    records back until the abort has bumped the producer epoch, while the abort waits for those
    very records. Only the call's timeout ends the wait, and the call made again (librdkafka's
    answer to a retriable timeout) completes the abort. 5 of 35 aborts with records in flight
    waited for the whole timeout; in the engine that was 60 s, and then the worker stopped."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        try:
            producer.abort_transaction(max(0.001, min(ABORT_ATTEMPT_S, left)))
        except KafkaException as exc:
            error = exc.args[0]
            if not error.retriable() or time.monotonic() >= deadline:
                raise
            log.info("abort_transaction: %s; asking again", error.str())
        else:
            return
