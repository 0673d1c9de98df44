"""Who owns which partition of bid-commands, read from the consumer group itself.

Every worker's engine consumer carries its web URL in its client id (app/engine/kafka.py), so
`describe_consumer_groups` answers "partition -> member -> URL" with no registry of our own. The
answer is cached and refreshed whenever this worker's assignment changes (the engine counts its
rebalances), when it is older than `max_age_s`, or when the caller saw it was wrong.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from app.engine.kafka import url_of
from app.kafka_config import KafkaConfig

log = logging.getLogger(__name__)
TIMEOUT_S = 5.0


class Owners:
    def __init__(self, kafka: KafkaConfig, group: str, topic: str, max_age_s: float = 5.0) -> None:
        self.kafka = kafka
        self._admin: AdminClient | None = None  # connects on first use, not at import
        self.group, self.topic, self.max_age_s = group, topic, max_age_s
        self._owners: dict[int, str] = {}
        self._read_at = 0.0
        self._generation = -1
        self._lock = threading.Lock()

    def owner(self, partition: int, generation: int, *, refresh: bool = False) -> str | None:
        """The web URL of the worker that owns `partition` (None: nobody right now). Blocking:
        call it from a thread, not the event loop."""
        with self._lock:
            stale = (
                refresh
                or generation != self._generation
                or time.monotonic() - self._read_at > self.max_age_s
            )
            if stale:
                self._owners = self._describe()
                self._read_at, self._generation = time.monotonic(), generation
            return self._owners.get(partition)

    def _describe(self) -> dict[int, str]:
        if self._admin is None:
            config: dict[str, Any] = {**self.kafka, "logger": logging.getLogger("librdkafka")}
            self._admin = AdminClient(config)  # the stubs type the config as scalars
        try:
            future = self._admin.describe_consumer_groups([self.group], request_timeout=TIMEOUT_S)
            description = future[self.group].result(timeout=TIMEOUT_S)
        except (KafkaException, TimeoutError) as exc:
            log.warning("cannot describe consumer group %s: %s", self.group, exc)
            return {}
        owners: dict[int, str] = {}
        for member in description.members:
            url = url_of(member.client_id or "")
            if url is None or member.assignment is None:
                continue
            for tp in member.assignment.topic_partitions:
                if tp.topic == self.topic:
                    owners[tp.partition] = url
        return owners
