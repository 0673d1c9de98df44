"""The web views' command producer: confluent-kafka (idempotent, murmur2) behind an asyncio future.

The same producer settings as every other command writer (app/producers.py): retries never
duplicate a command, and keys land where the console producer and the engine expect them.
Delivery reports are served by a small polling thread and handed to the event loop.
"""

from __future__ import annotations

import asyncio
import threading

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from app.kafka_config import KafkaConfig
from app.producers import command_producer

POLL_S = 0.1


class AsyncProducer:
    def __init__(self, kafka: KafkaConfig) -> None:
        self.kafka = kafka
        self._producer: Producer | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def _started(self) -> Producer:
        with self._lock:
            if self._producer is None:  # connects on first use, not at import
                self._producer = command_producer(self.kafka, **{"linger.ms": 1})
                self._thread = threading.Thread(
                    target=self._serve, name="outbid-ingest", daemon=True
                )
                self._thread.start()
            return self._producer

    def _serve(self) -> None:
        while not self._stop.is_set():
            if self._producer is not None:
                self._producer.poll(POLL_S)

    async def send(self, topic: str, key: bytes, value: bytes) -> Message:
        """Produce and wait for the broker's acknowledgement; raises KafkaException."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Message] = loop.create_future()

        def delivered(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                loop.call_soon_threadsafe(_fail, done, KafkaException(err))
            else:
                loop.call_soon_threadsafe(_succeed, done, msg)

        self._started().produce(topic, key=key, value=value, on_delivery=delivered)
        return await done

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._producer is not None:
            self._producer.flush(5)


def _succeed(future: asyncio.Future[Message], msg: Message) -> None:
    if not future.done():
        future.set_result(msg)


def _fail(future: asyncio.Future[Message], exc: Exception) -> None:
    if not future.done():
        future.set_exception(exc)
