"""`settle`: after `apply`, ask for the plan until the cluster shows the changes (each broker
answers metadata from its own cache, and a lagging one reports a new topic missing)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from app.errors import TopicsDriftError
from app.topics import admin
from app.topics.admin import Change, Plan

MISSING = Plan(brokers=3, changes=[Change("t", "create", "partitions=8")])
CLEAN = Plan(brokers=3)


def plans(monkeypatch: pytest.MonkeyPatch, *answers: Plan) -> list[Plan]:
    """Make admin.plan answer `answers` in turn (the last one forever); returns the answers
    not given yet."""
    left = list(answers)

    def answer(*_args: object, **_kwargs: object) -> Plan:
        return left.pop(0) if len(left) > 1 else left[0]

    monkeypatch.setattr(admin, "plan", answer)
    monkeypatch.setattr(admin, "apply", lambda *_a, **_k: None)
    return left


def test_a_lagging_broker_is_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    # a clean answer between two stale ones is not enough: three clean ones in a row are
    left = plans(monkeypatch, MISSING, CLEAN, MISSING, CLEAN, CLEAN, CLEAN, MISSING)
    settled = admin.settle(None, None, {}, pause_s=0)  # type: ignore[arg-type]
    assert settled.changes == []
    assert left == [MISSING]  # it stopped asking after the third clean plan in a row


def test_it_gives_up_after_the_timeout_with_the_last_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    plans(monkeypatch, MISSING)
    settled = admin.settle(None, None, {}, timeout_s=0.05, pause_s=0.01)  # type: ignore[arg-type]
    assert settled.changes == MISSING.changes


def test_reconcile_says_what_the_cluster_still_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    plans(monkeypatch, MISSING)
    monkeypatch.setattr(admin, "SETTLE_TIMEOUT_S", 0.05)
    monkeypatch.setattr(
        admin, "settle", lambda *a, **k: Plan(brokers=3, changes=list(MISSING.changes))
    )
    with pytest.raises(
        TopicsDriftError, match=r"(?s)still differs from topics.yaml.*create t: partitions=8"
    ):
        admin.reconcile(None, None, {})  # type: ignore[arg-type]


def test_a_broker_that_cannot_describe_a_new_topic_yet_is_waited_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a 3-broker CI run: describe_configs reached a broker that had not learned the new topic
    answers: list[Plan | KafkaException] = [
        KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)),
        CLEAN,
    ]

    def answer(*_args: object, **_kwargs: object) -> Plan:
        given = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(given, KafkaException):
            raise given
        return given

    monkeypatch.setattr(admin, "plan", answer)
    assert admin.settle(None, None, {}, pause_s=0).changes == []  # type: ignore[arg-type]


def test_other_kafka_errors_are_not_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    def answer(*_args: object, **_kwargs: object) -> Plan:
        raise KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))

    monkeypatch.setattr(admin, "plan", answer)
    with pytest.raises(KafkaException):
        admin.settle(None, None, {}, pause_s=0)  # type: ignore[arg-type]
