"""The loop's early offsets (app/engine/loop.py `_send_offsets_early`): a caught-up batch's input
offsets go to the transaction while the batch is handled, and the commit sends them again only
when what was handled differs. The Kafka clients are replaced by recorders here: this tests the
loop's bookkeeping; the e2e tests (tests/e2e/test_engine.py) run the same code against the real
broker, where a wrong offset shows as a lost or a twice-applied command in `outbid verify`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from app.engine.loop import Engine
from app.settings import Settings

TOPIC = "t.bid-commands"


class FakeMessage:
    def __init__(self, partition: int, offset: int, error: KafkaError | None = None) -> None:
        self._partition, self._offset, self._error = partition, offset, error

    def error(self) -> KafkaError | None:
        return self._error

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


class RecordingProducer:
    """What the engine asked of its transactional producer; a send may be held or made to fail."""

    def __init__(self) -> None:
        self.sent: list[dict[int, int]] = []
        self.calls: list[str] = []
        self.release = threading.Event()
        self.release.set()
        self.fail: KafkaException | None = None

    def begin_transaction(self) -> None:
        self.calls.append("begin")

    def send_offsets_to_transaction(
        self, offsets: list[TopicPartition], _metadata: object, _timeout: float
    ) -> None:
        assert self.release.wait(10)
        self.calls.append("offsets")
        if self.fail is not None:
            raise self.fail
        self.sent.append({tp.partition: tp.offset for tp in offsets if tp.topic == TOPIC})

    def abort_transaction(self, _timeout: float) -> None:
        self.calls.append("abort")


class FakeTables:
    rolled_back_times = 0

    def rolled_back(self) -> None:
        self.rolled_back_times += 1


class FakeConsumer:
    def consumer_group_metadata(self) -> object:
        return object()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    settings = Settings(  # type: ignore[call-arg]
        KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1",  # never contacted: the clients are replaced
        topic_prefix="t.",
        redis_enabled=False,
        snapshot_interval_s=0,
        snapshot_every_writes=0,
    )
    built = Engine(settings, instance="w1", url="http://127.0.0.1:1", tabledir=tmp_path)
    real: Any = (built.producer, built.consumer)
    built.producer = RecordingProducer()  # type: ignore[assignment]
    built.consumer = FakeConsumer()  # type: ignore[assignment]
    built.partitions.update({0: FakeTables(), 3: FakeTables()})  # type: ignore[dict-item]
    built._rewind = lambda _partitions: None  # type: ignore[method-assign,assignment]
    yield built
    built.partitions.clear()
    built._offsets_sender.shutdown(wait=True)
    real[1].close()


def recorder(engine: Engine) -> RecordingProducer:
    producer = engine.producer
    assert isinstance(producer, RecordingProducer)
    return producer


def test_a_caught_up_batch_sends_the_offsets_after_it_for_owned_partitions_only(
    engine: Engine,
) -> None:
    engine.txn.positions[0] = 5  # an earlier batch of the same transaction
    batch: Any = [FakeMessage(3, 10), FakeMessage(3, 11), FakeMessage(7, 40), FakeMessage(0, 6)]
    engine._send_offsets_early(batch)
    assert engine.txn.open  # begun for the offsets
    engine.txn.positions.update({3: 12, 0: 7})  # what handling the batch records
    engine._send_offsets(engine.txn)
    # partition 7 is not ours: its owner commits it. Nothing is sent twice.
    assert recorder(engine).sent == [{0: 7, 3: 12}]
    assert engine.txn.early_offsets is None


def test_the_commit_sends_again_when_the_handled_offsets_differ(engine: Engine) -> None:
    engine._send_offsets_early([FakeMessage(3, 10)])  # type: ignore[list-item]
    engine.txn.positions.update({3: 11, 0: 1})  # handled more than the early send knew of
    engine._send_offsets(engine.txn)
    assert recorder(engine).sent == [{3: 11}, {3: 11, 0: 1}]


def test_a_batch_without_owned_records_sends_nothing_and_begins_nothing(engine: Engine) -> None:
    eof: Any = KafkaError(KafkaError._PARTITION_EOF)
    engine._send_offsets_early([FakeMessage(7, 1), FakeMessage(0, 3, error=eof)])  # type: ignore[list-item]
    assert not engine.txn.open
    assert engine.txn.early_offsets is None
    assert recorder(engine).calls == []


def test_a_failed_early_send_fails_the_commit_like_a_late_one(engine: Engine) -> None:
    recorder(engine).fail = KafkaException(KafkaError(KafkaError._FENCED, "fenced"))
    engine._send_offsets_early([FakeMessage(0, 1)])  # type: ignore[list-item]
    engine.txn.positions[0] = 2
    with pytest.raises(KafkaException):
        engine._send_offsets(engine.txn)


def test_an_abort_waits_for_the_early_send_in_flight(engine: Engine) -> None:
    producer = recorder(engine)
    producer.release.clear()  # the broker has not answered the offsets yet
    engine._send_offsets_early([FakeMessage(0, 1)])  # type: ignore[list-item]
    aborting = threading.Thread(target=engine._abort)
    aborting.start()
    aborting.join(0.2)
    assert aborting.is_alive()  # no abort_transaction() while the send is in flight
    producer.release.set()
    aborting.join(10)
    assert producer.calls == ["begin", "offsets", "abort"]
