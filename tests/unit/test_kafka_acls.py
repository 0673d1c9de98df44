"""infra/kafka/acls.yaml: least privilege, under the deployment's topic prefix."""

from __future__ import annotations

from confluent_kafka.admin import AclOperation, ResourcePatternType, ResourceType

from app.devstack.security import acl_bindings
from app.settings import Settings
from app.topics import load_topics


def _grants(principal: str) -> set[tuple[ResourceType, str, ResourcePatternType, AclOperation]]:
    return {
        (b.restype, b.name, b.resource_pattern_type, b.operation)
        for b in acl_bindings("p.")
        if b.principal == f"User:{principal}"
    }


def test_every_name_in_the_file_is_a_topics_yaml_topic_under_the_prefix() -> None:
    topics = {t.name for t in load_topics(Settings().topics_file).resolve(1, "p.")}
    named = {b.name for b in acl_bindings("p.") if b.restype == ResourceType.TOPIC}
    assert named <= topics


def test_ingest_may_only_write_commands() -> None:
    assert _grants("ingest") == {
        (ResourceType.TOPIC, "p.bid-commands", ResourcePatternType.LITERAL, AclOperation.WRITE),
        (ResourceType.TOPIC, "p.bid-commands", ResourcePatternType.LITERAL, AclOperation.DESCRIBE),
    }


def test_the_reader_writes_nothing_and_holds_no_transactional_id() -> None:
    grants = _grants("reader")
    assert grants
    assert {g[3] for g in grants} <= {AclOperation.READ, AclOperation.DESCRIBE}
    assert all(g[0] != ResourceType.TRANSACTIONAL_ID for g in grants)


def test_the_worker_owns_its_transactional_id_prefix_and_its_group() -> None:
    grants = _grants("worker")
    prefixed = ResourcePatternType.PREFIXED
    assert (ResourceType.TRANSACTIONAL_ID, "p.outbid-", prefixed, AclOperation.WRITE) in grants
    literal = ResourcePatternType.LITERAL
    assert (ResourceType.GROUP, "p.outbid", literal, AclOperation.READ) in grants
    assert not any(g[0] == ResourceType.BROKER for g in grants)  # no cluster-wide right
