"""The confluent-kafka producer for commands, configured once for every command-line writer."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import Producer

from app.kafka_config import KafkaConfig


def command_producer(kafka: KafkaConfig, **extra: Any) -> Producer:
    """Keys land where the Java client, Faust and the web views expect them; retries never duplicate."""
    return Producer(
        {
            **kafka,
            # librdkafka's default partitioner (CRC32) would put a key on another partition than
            # kafka-console-producer and Faust (murmur2) do.
            "partitioner": "murmur2_random",
            "enable.idempotence": True,
            "logger": logging.getLogger("librdkafka"),
            **extra,
        }
    )
