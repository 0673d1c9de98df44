"""The committed offsets the engine keeps for its partitions (app/engine/assignment.py): an abort
rewinds to them, so one that could not be read must never be kept as "nothing committed yet"
(which rewinds to the start of the partition). Kafka's answer is stubbed: this is the rule, the
pipeline tests run it against the broker."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, TopicPartition

from app.engine.assignment import Assignment
from app.errors import KafkaUnavailableError
from app.settings import Settings


@dataclass
class Committed:
    topic: str
    partition: int
    offset: int
    error: KafkaError | None = None


class Group:
    """Answers committed() like confluent-kafka: per-partition errors ride on the result."""

    def __init__(self, answers: list[Committed]) -> None:
        self.answers = answers

    def committed(self, _partitions: list[TopicPartition], timeout: float) -> list[Committed]:
        assert timeout > 0
        return self.answers


def assignment(tmp_path: Path) -> Assignment:
    settings = Settings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1")  # type: ignore[call-arg]
    return Assignment(settings, tmp_path, None, str, "events", None, None, {})  # type: ignore[arg-type]


def test_an_offset_the_group_could_not_answer_stops_the_assignment(tmp_path: Path) -> None:
    kept = assignment(tmp_path)
    error = KafkaError(KafkaError.COORDINATOR_NOT_AVAILABLE)
    group: Any = Group([Committed("bid-commands", 3, -1001, error)])
    with pytest.raises(KafkaUnavailableError, match=r"committed offset of bid-commands\[3\]"):
        kept.assign(group, [TopicPartition("bid-commands", 3)])
    assert 3 not in kept.committed


def test_released_partitions_forget_their_offsets(tmp_path: Path) -> None:
    kept = assignment(tmp_path)
    kept.committed.update({1: 40, 2: 7})
    kept.release({2})
    assert kept.committed == {1: 40}
