"""An abort with records in flight must not hang (app/engine/kafka.py abort_transaction).

librdkafka can deadlock one long abort_transaction() call: the abort purges queued records, a
batch in flight behind a purged one fails with OUT_OF_ORDER_SEQUENCE_NUMBER, and librdkafka holds
that partition's records until the abort has bumped the epoch, while the abort waits for them.
Measured against this broker: about one abort in seven, each until the call's timeout (60 s in the
engine, after which the worker stopped). Here every transaction is shaped like a busy engine's
that Kafka refused: records queued and in flight on 32 partitions, one record over the topic's
size limit. The test goes on until aborts have hit the deadlock (each then needs a second call,
which app/engine/kafka.py logs), so it proves the workaround, and with one long call (the code
before the fix) it fails at the first of them."""

from __future__ import annotations

import logging
import time

import pytest
from confluent_kafka.admin import NewTopic

from app.engine import kafka
from app.settings import Settings
from app.topics.admin import admin_client
from tests.conftest import Servers
from tests.e2e.conftest import read_all

pytestmark = pytest.mark.integration
PARTITIONS = 32
RECORDS = 2_000  # per transaction: several batches per partition, some queued, some in flight
MAX_ABORTS = 120  # the deadlock came once in about seven aborts
DEADLOCKS = 2  # met and broken: enough
ABORT_TIMEOUT_S = 20.0  # far longer than an abort takes: a deadlocked call would use all of it


@pytest.fixture
def settings(servers: Servers, prefix: str) -> Settings:
    return Settings(KAFKA_BOOTSTRAP_SERVERS=servers.kafka, topic_prefix=prefix)  # type: ignore[call-arg]


def test_aborting_with_records_in_flight_completes_and_commits_go_on(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    topic, small = settings.topic("abort-busy"), settings.topic("abort-small")
    admin = admin_client(settings.kafka_client_config())
    created = admin.create_topics(
        [
            NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1),
            NewTopic(small, 1, 1, config={"max.message.bytes": "1000"}),
        ]
    )
    for future in created.values():
        future.result(60)
    producer = kafka.producer(settings, instance="abort-test")  # the engine's settings
    producer.init_transactions(60)
    value = b"x" * 300
    caplog.set_level(logging.INFO, logger=kafka.log.name)
    aborts = 0
    while aborts < MAX_ABORTS and asked_again(caplog) < DEADLOCKS:
        aborts += 1
        producer.begin_transaction()
        for n in range(RECORDS):
            producer.produce(topic, value=value, partition=n % PARTITIONS)
            if n == RECORDS // 2:
                producer.produce(small, value=b"y" * 5_000)  # the broker refuses it: abortable
        time.sleep(0.03)  # past linger.ms: batches go out while more are queued
        kafka.abort_transaction(producer, ABORT_TIMEOUT_S)  # raises when it times out
    assert asked_again(caplog) > 0, f"no abort of {aborts} met the deadlock: nothing was tested"
    producer.begin_transaction()
    producer.produce(topic, value=b"kept", partition=0)
    producer.commit_transaction(60)
    committed = read_all(settings.kafka_bootstrap_servers, topic)  # read_committed
    assert [value for _key, value, *_ in committed] == [b"kept"]  # nothing aborted is visible


def asked_again(caplog: pytest.LogCaptureFixture) -> int:
    """Aborts whose first call timed out (each logs once per extra call)."""
    return sum("asking again" in record.getMessage() for record in caplog.records)
