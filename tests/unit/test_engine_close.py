"""Closing the engine after the loop failed (app/engine/loop.py, `_close`).

The loop's `finally` closes the clients. With a fatal producer (fenced, or a transaction the broker
refused), `producer.flush()` raises the same fatal error again; raised from `_close`, it replaced
the loop's own exception in the worker's log (a chaos run showed "the engine stopped" with the
flush's INVALID_TXN_STATE instead of what had stopped the loop) and skipped the rest of the
clean-up (table snapshots, RocksDB, Redis). The clients are stubbed: the rule is that the close
goes on; the e2e tests run the engine against the broker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from app.engine.loop import Engine
from app.settings import Settings


class FatalProducer:
    def flush(self, *_: Any) -> int:
        raise KafkaException(KafkaError(KafkaError.INVALID_TXN_STATE, fatal=True))


class ClosedConsumer:
    def close(self) -> None:
        pass


def loop_failing(engine: Engine) -> None:
    """What Engine.run does when the loop raises: close the clients in its `finally`."""
    try:
        raise RuntimeError("what stopped the loop")
    finally:
        engine._close()


def test_a_fatal_producer_does_not_hide_why_the_loop_stopped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(  # type: ignore[call-arg]
        KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", redis_enabled=False, state_dir=tmp_path / "state"
    )
    engine = Engine(settings, instance="close", url="http://127.0.0.1:1", tabledir=tmp_path / "t")
    engine.consumer.close()
    engine.consumer, engine.producer = ClosedConsumer(), FatalProducer()  # type: ignore[assignment]
    closed: list[str] = []
    engine.assignment.close = lambda: closed.append("tables")  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="what stopped the loop"):
        loop_failing(engine)
    assert closed == ["tables"]  # the clean-up went on after the flush
    assert "producer flush at close" in caplog.text
