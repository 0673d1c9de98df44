"""The engine's rebalance and stop paths while a commit runs on the helper thread
(app/engine/loop.py). The clients are stubbed: the rules are the order of the calls; the e2e
tests and the chaos run drive the engine against real brokers.

- Stopping with a transaction open: the consumer's close() calls the revoke, and the revoke
  commits what is open through the helper thread, so that thread must still be running then.
  Stopped first, the commit failed with "cannot schedule new futures after shutdown", which hid
  the error that had stopped the loop, skipped the rest of the clean-up and left the transaction
  open in Kafka.
- Partitions lost while a commit is in flight: the batch decided meanwhile is dropped without
  beginning it in Kafka. Begun only to be aborted at once, the abort failed in the chaos run with
  INVALID_TXN_STATE, a fatal error (an abort right after a begin, confluentinc/librdkafka#4849),
  and the worker stopped. A lost partition is not sought either (it is no longer assigned)."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from rocksdict import Cache

from agents.records import Destination, Output
from app.engine.loop import Engine, InFlight
from app.engine.transaction import Transaction
from app.settings import Settings
from tables.partition import PartitionTables
from tables.store import rocksdb_options


class Producer:
    """Records the transactional calls the engine makes."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def begin_transaction(self) -> None:
        self.calls.append("begin")

    def produce(self, *_: Any, **__: Any) -> None:
        self.calls.append("produce")

    def send_offsets_to_transaction(self, offsets: list[TopicPartition], *_: Any) -> None:
        self.calls.append(f"offsets {[(tp.partition, tp.offset) for tp in offsets]}")

    def commit_transaction(self, *_: Any) -> None:
        self.calls.append("commit")

    def abort_transaction(self, *_: Any) -> None:
        self.calls.append("abort")

    def poll(self, *_: Any) -> int:
        return 0

    def flush(self, *_: Any) -> int:
        self.calls.append("flush")
        return 0


class Consumer:
    """close() revokes the assignment through the engine's callback, as librdkafka's does."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.seeks: list[tuple[int, int]] = []

    def seek(self, tp: TopicPartition) -> None:
        self.seeks.append((tp.partition, tp.offset))

    def close(self) -> None:
        self.engine._on_revoke(self, [])  # type: ignore[arg-type]

    def consumer_group_metadata(self) -> object:
        return object()


def stubbed(tmp_path: Path) -> tuple[Engine, Producer, Consumer]:
    settings = Settings(  # type: ignore[call-arg]
        KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", redis_enabled=False, state_dir=tmp_path / "state"
    )
    engine = Engine(
        settings, instance="callbacks", url="http://127.0.0.1:1", tabledir=tmp_path / "t"
    )
    real = engine.consumer
    producer, consumer = Producer(), Consumer(engine)
    engine.producer, engine.consumer = producer, consumer  # type: ignore[assignment]
    real.close()
    return engine, producer, consumer


def test_closing_with_a_transaction_open_commits_it_through_the_helper_thread(
    tmp_path: Path,
) -> None:
    engine, producer, _consumer = stubbed(tmp_path)
    engine._begin()  # what the loop left open when it stopped
    engine.txn.positions[3] = 41
    engine._close()
    assert producer.calls == ["begin", "offsets [(3, 41)]", "commit", "flush"]
    assert engine.assignment.committed == {3: 41}


def in_flight(engine: Engine, tmp_path: Path, error: KafkaException | None) -> None:
    """Partitions 1 and 2 owned; a commit of offsets 11 and 21 in flight (done, or failed with
    `error`); a batch decided meanwhile for partition 1, its event held."""
    options = rocksdb_options(Cache(1024 * 1024))
    for p in (1, 2):
        engine.partitions[p] = PartitionTables(p, tmp_path / "t", options, cache_size=10)
    engine.assignment.committed.update({1: 10, 2: 20})
    sealed = Transaction(begun=True, positions={1: 11, 2: 21})
    sealed.begin()
    done: Future[None] = Future()
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
    engine._in_flight = InFlight(sealed, [], done)
    engine.txn.begin()
    engine.txn.positions[1] = 12
    engine.txn.held.append(Output(Destination.EVENTS, b"A-1", b"{}", partition=1))


@pytest.mark.parametrize("commit_failed", [False, True])
def test_partitions_lost_during_a_commit_drop_the_batch_decided_meanwhile_outside_kafka(
    tmp_path: Path, commit_failed: bool
) -> None:
    engine, producer, consumer = stubbed(tmp_path)
    failure = KafkaException(KafkaError(KafkaError._STATE)) if commit_failed else None
    in_flight(engine, tmp_path, failure)
    engine._on_lost(consumer, [TopicPartition(engine.commands, 1)])  # type: ignore[arg-type]
    # a failed commit is aborted in Kafka; the batch decided on top of it never began there
    assert producer.calls == (["abort"] if commit_failed else [])
    assert not engine.txn.open
    assert list(engine.partitions) == [2]
    kept = 20 if commit_failed else 21  # where partition 2's committed input ends
    assert consumer.seeks == [(2, kept)]  # the lost partition 1 is not sought
    engine._close()
