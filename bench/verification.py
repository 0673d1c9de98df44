"""The brokers' transaction partition verification (KIP-890 part 1), for benchmarks that measure
what it costs: read, changed for a run, put back.

`transaction.partition.verification.enable` (on by default since Kafka 3.6) makes a partition's
leader check the first transactional write of each transaction with the transaction coordinator:
it keeps a late or retried produce request from starting a transaction nobody will end (a
hanging transaction, which stalls every read_committed reader of the partition). Turning it off
is an experiment to see its cost, never a setting to run with.
"""

from __future__ import annotations

import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
)

from app.errors import OutbidError

VERIFICATION = "transaction.partition.verification.enable"


class VerificationError(OutbidError):
    """The brokers' verification setting could not be changed."""


class Cluster:
    """The verification setting of every broker: read, changed, put back."""

    def __init__(self, admin: AdminClient) -> None:
        self.admin = admin
        self.brokers = sorted(admin.list_topics(timeout=30).brokers)
        self.original: dict[int, str | None] = {}  # a per-broker value set before the bench

    def read(self) -> None:
        for broker in self.brokers:
            entry = self._entry(broker)
            dynamic = (
                entry is not None
                and ConfigSource(entry.source) is ConfigSource.DYNAMIC_BROKER_CONFIG
            )
            self.original[broker] = entry.value if entry is not None and dynamic else None

    def effective(self) -> list[str]:
        """What each broker says it uses now (recorded with every measurement)."""
        return [str(entry.value) if (entry := self._entry(b)) else "?" for b in self.brokers]

    def _entry(self, broker: int) -> ConfigEntry | None:
        resource = ConfigResource("broker", str(broker))
        found: ConfigEntry | None = (
            self.admin.describe_configs([resource])[resource].result(30).get(VERIFICATION)
        )
        return found

    def set(self, value: str | None) -> None:
        self._alter(dict.fromkeys(self.brokers, value))

    def restore(self) -> None:
        self._alter(self.original)

    def _alter(self, values: dict[int, str | None]) -> None:
        resources = []
        for broker, value in values.items():
            op = AlterConfigOpType.SET if value is not None else AlterConfigOpType.DELETE
            entry = ConfigEntry(VERIFICATION, value or "", incremental_operation=op)
            resources.append(ConfigResource("broker", str(broker), incremental_configs=[entry]))
        try:
            for future in self.admin.incremental_alter_configs(resources).values():
                future.result(30)
        except KafkaException as exc:
            raise VerificationError(
                f"could not change {VERIFICATION} on the brokers ({exc.args[0].str()}): measure "
                "against the bench's private broker (unset KAFKA_BOOTSTRAP_SERVERS), or pass "
                "--verification on"
            ) from exc
        time.sleep(1.0)  # a dynamic broker config takes effect asynchronously
