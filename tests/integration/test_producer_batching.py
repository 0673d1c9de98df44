"""The engine's producer lingers (app/engine/kafka.py PRODUCER_BATCHING) because committing a
transaction sends what is lingering at once: a caught-up worker commits at once and must not
wait for linger.ms. librdkafka's flush (which commit_transaction() runs) ignores linger.ms since
1.5; this pins that down against the real broker with a linger far longer than the commit may
take, so a client that honoured it at commit would fail here."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from app.engine import kafka
from app.settings import Settings
from app.topics.admin import admin_client
from tests.conftest import Servers

pytestmark = pytest.mark.integration
LINGER_MS = 120_000  # two minutes: a commit that waited for it would time out below
COMMIT_TIMEOUT_S = 30.0


@pytest.fixture
def settings(servers: Servers, prefix: str) -> Settings:
    return Settings(KAFKA_BOOTSTRAP_SERVERS=servers.kafka, topic_prefix=prefix)  # type: ignore[call-arg]


def create_topic(settings: Settings, name: str) -> str:
    admin = admin_client(settings.kafka_client_config())
    admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result(60)
    return name


def read_committed(settings: Settings, topic: str, expected: int) -> list[bytes | None]:
    consumer = Consumer(
        {
            **settings.kafka_client_config(),
            "group.id": f"{topic}-reader",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    values: list[bytes | None] = []
    try:
        for _ in range(60):
            for message in consumer.consume(100, 1.0):
                assert message.error() is None, message.error()
                values.append(message.value())
            if len(values) >= expected:
                break
    finally:
        consumer.close()
    return values


def test_commit_sends_lingering_records_without_waiting_for_the_linger(settings: Settings) -> None:
    topic = create_topic(settings, settings.topic("lingering"))
    # the engine's producer batching, with a linger no commit may wait for
    producer = Producer(
        {
            **settings.kafka_client_config(),
            "transactional.id": f"{topic}-txn",
            **kafka.PRODUCER_BATCHING,
            "linger.ms": LINGER_MS,
            # a transactional producer's messages time out with its transactions: above the linger
            "transaction.timeout.ms": 2 * LINGER_MS,
        }
    )
    producer.init_transactions(COMMIT_TIMEOUT_S)
    producer.begin_transaction()
    for n in range(3):
        producer.produce(topic, key=b"A-1", value=f"bid-{n}".encode(), partition=0)
    try:
        producer.commit_transaction(COMMIT_TIMEOUT_S)
    except KafkaException as exc:  # pragma: no cover - only when the client regresses
        pytest.fail(f"commit_transaction waited for linger.ms: {exc}")
    assert read_committed(settings, topic, 3) == [b"bid-0", b"bid-1", b"bid-2"]
