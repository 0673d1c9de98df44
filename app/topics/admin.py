"""Reconcile live Kafka topics with topics.yaml: plan, apply, check.

The plan is computed first and printed; `apply` only ever creates topics, adds partitions
to topics outside a co-partitioned group, and sets the configs the file declares. It refuses
changes Kafka cannot make safely (fewer partitions, a co-partitioned topic's count,
replication factor) and says what to do instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)

from app.errors import TopicsDriftError
from app.kafka_config import KafkaConfig, unavailable
from app.topics.spec import ResolvedTopic, TopicsSpec

log = logging.getLogger(__name__)
TIMEOUT_S = 15.0
SETTLE_TIMEOUT_S = 30.0
SETTLE_READS = 3  # clean plans in a row: each metadata request may go to another broker


@dataclass(frozen=True, slots=True)
class Change:
    topic: str
    action: str  # "create" | "alter-config" | "add-partitions" | "refuse"
    detail: str


@dataclass(slots=True)
class Plan:
    brokers: int
    changes: list[Change] = field(default_factory=list)

    @property
    def refused(self) -> list[Change]:
        return [c for c in self.changes if c.action == "refuse"]

    @property
    def actionable(self) -> list[Change]:
        return [c for c in self.changes if c.action != "refuse"]


def admin_client(kafka: KafkaConfig) -> AdminClient:
    # librdkafka logs every refused connection to stderr; route it through logging instead.
    config: dict[str, Any] = {**kafka, "logger": logging.getLogger("librdkafka")}
    return AdminClient(config)  # the stubs type the config as scalars; a logger is allowed


def cluster_size(admin: AdminClient, kafka: KafkaConfig) -> int:
    try:
        metadata = admin.list_topics(timeout=TIMEOUT_S)
    except KafkaException as exc:
        raise unavailable(kafka, exc) from exc
    return len(metadata.brokers)


def plan(spec: TopicsSpec, admin: AdminClient, kafka: KafkaConfig, prefix: str = "") -> Plan:
    brokers = cluster_size(admin, kafka)
    wanted = spec.resolve(brokers, prefix)
    live = admin.list_topics(timeout=TIMEOUT_S).topics
    result = Plan(brokers=brokers)
    existing = [t for t in wanted if t.name in live]
    live_configs = _describe_configs(admin, [t.name for t in existing])
    for topic in wanted:
        if topic.name not in live:
            detail = (
                f"partitions={topic.partitions} replication_factor={topic.replication_factor} "
                + " ".join(f"{k}={v}" for k, v in sorted(topic.configs.items()))
            )
            result.changes.append(Change(topic.name, "create", detail))
            continue
        meta = live[topic.name]
        result.changes.extend(_partition_changes(topic, meta))
        for name, value in sorted(topic.configs.items()):
            current = live_configs[topic.name].get(name)
            if current != value:
                result.changes.append(
                    Change(topic.name, "alter-config", f"{name}: {current} -> {value}")
                )
    return result


def _partition_changes(topic: ResolvedTopic, meta: object) -> list[Change]:
    partitions = getattr(meta, "partitions", {})
    have = len(partitions)
    changes = []
    if have > topic.partitions:
        changes.append(
            Change(
                topic.name,
                "refuse",
                f"has {have} partitions, topics.yaml says {topic.partitions}: Kafka cannot remove "
                "partitions; recreate the topic (losing its data) or set partitions back to "
                f"{have} in topics.yaml",
            )
        )
    elif have < topic.partitions and topic.co_partitioned:
        changes.append(
            Change(
                topic.name,
                "refuse",
                f"has {have} partitions, topics.yaml says {topic.partitions}: it is co-partitioned, "
                "so adding partitions would move auctions to other partitions and split their "
                "history; migrate into new topics instead (see docs/operations.md)",
            )
        )
    elif have < topic.partitions:
        changes.append(Change(topic.name, "add-partitions", f"{have} -> {topic.partitions}"))
    replicas = {len(getattr(p, "replicas", [])) for p in partitions.values()}
    if replicas and replicas != {topic.replication_factor}:
        changes.append(
            Change(
                topic.name,
                "refuse",
                f"replication factor is {sorted(replicas)}, expected {topic.replication_factor}: "
                "change it with a partition reassignment (outbid kafka kafka-reassign-partitions)",
            )
        )
    return changes


def _describe_configs(admin: AdminClient, names: list[str]) -> dict[str, dict[str, str]]:
    if not names:
        return {}
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in names]
    futures = admin.describe_configs(resources, request_timeout=TIMEOUT_S)
    out: dict[str, dict[str, str]] = {}
    for resource, future in futures.items():
        entries = future.result(timeout=TIMEOUT_S)
        out[resource.name] = {k: str(e.value) for k, e in entries.items()}
    return out


def apply(plan_: Plan, spec: TopicsSpec, admin: AdminClient, prefix: str = "") -> None:
    """Carry out a plan; refuses (raising TopicsDriftError) before touching anything if any change is refused."""
    if plan_.refused:
        raise TopicsDriftError(
            "refusing to apply topics.yaml:\n"
            + "\n".join(f"  {c.topic}: {c.detail}" for c in plan_.refused)
        )
    wanted = {t.name: t for t in spec.resolve(plan_.brokers, prefix)}
    creates = [wanted[c.topic] for c in plan_.changes if c.action == "create"]
    if creates:
        new = [
            NewTopic(
                t.name,
                num_partitions=t.partitions,
                replication_factor=t.replication_factor,
                config=t.configs,
            )
            for t in creates
        ]
        _wait(admin.create_topics(new, request_timeout=TIMEOUT_S))
    grow = [c.topic for c in plan_.changes if c.action == "add-partitions"]
    if grow:
        _wait(admin.create_partitions([NewPartitions(n, wanted[n].partitions) for n in grow]))
    alter: dict[str, list[ConfigEntry]] = {}
    for change in plan_.changes:
        if change.action == "alter-config":
            name = change.detail.split(":", 1)[0]
            entry = ConfigEntry(
                name,
                wanted[change.topic].configs[name],
                incremental_operation=AlterConfigOpType.SET,
            )
            alter.setdefault(change.topic, []).append(entry)
    if alter:
        resources = [
            ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=entries)
            for topic, entries in alter.items()
        ]
        _wait(admin.incremental_alter_configs(resources))


def settle(
    spec: TopicsSpec,
    admin: AdminClient,
    kafka: KafkaConfig,
    prefix: str = "",
    *,
    timeout_s: float = SETTLE_TIMEOUT_S,
    pause_s: float = 0.2,
) -> Plan:
    """The plan once the cluster shows what `apply` did: each broker answers metadata from its
    own cache, and one that has not learned a new topic yet reports it missing for a moment (a
    spurious "create", and a worker whose consumer meets it stops: "create the topics first").
    Asks until SETTLE_READS plans in a row are empty, or `timeout_s` has passed; returns the
    last plan. A lagging broker may also refuse to describe a topic it has not learned yet
    (UNKNOWN_TOPIC_OR_PART): that too is asked again until the timeout."""
    deadline = time.monotonic() + timeout_s
    clean = 0
    while True:
        try:
            current = plan(spec, admin, kafka, prefix)
        except KafkaException as exc:
            lagging = exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART
            if not lagging or time.monotonic() >= deadline:
                raise
            clean = 0
            time.sleep(pause_s)
            continue
        clean = 0 if current.changes else clean + 1
        if clean >= SETTLE_READS or time.monotonic() >= deadline:
            return current
        time.sleep(pause_s)


def reconcile(spec: TopicsSpec, admin: AdminClient, kafka: KafkaConfig, prefix: str = "") -> None:
    """Plan, apply, and wait until the cluster shows it: what `dev up`, `demo` and `chaos` do
    before they start workers."""
    changes = plan(spec, admin, kafka, prefix)
    if not changes.changes:
        return
    apply(changes, spec, admin, prefix)
    left = settle(spec, admin, kafka, prefix)
    if left.changes:
        raise TopicsDriftError(
            f"the topics were applied, but after {SETTLE_TIMEOUT_S:.0f} s the cluster still "
            "differs from topics.yaml (are all brokers up?):\n"
            + "\n".join(f"  {c.action} {c.topic}: {c.detail}" for c in left.changes)
        )


def _wait(futures: Mapping[Any, Any]) -> None:
    for key, future in futures.items():
        try:
            future.result(timeout=TIMEOUT_S)
        except KafkaException as exc:
            raise TopicsDriftError(f"{key}: Kafka refused the change: {exc.args[0]}") from exc
