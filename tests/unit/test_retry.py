"""Backoff with jitter, and which failures are retried."""

from __future__ import annotations

import asyncio
import random

import pytest

from app.errors import InvalidMessage, InvalidReason, KafkaUnavailableError
from app.retry import Backoff, RetriesExhaustedError, is_retriable, retry


def test_delay_grows_exponentially_and_is_capped_with_full_jitter() -> None:
    backoff = Backoff(initial_s=0.1, factor=2, max_s=1.0)
    rng = random.Random(0)
    for attempt, cap in [(0, 0.1), (1, 0.2), (2, 0.4), (3, 0.8), (4, 1.0), (9, 1.0)]:
        samples = [backoff.delay(attempt, rng) for _ in range(200)]
        assert all(0 <= s <= cap for s in samples)
        assert max(samples) > cap * 0.8  # jitter spreads over the whole range


def test_retriable_and_permanent_errors_are_told_apart() -> None:
    assert is_retriable(KafkaUnavailableError("down"))
    assert is_retriable(ConnectionRefusedError())
    assert is_retriable(TimeoutError())
    assert not is_retriable(InvalidMessage(InvalidReason.MALFORMED_JSON, "bad"))
    assert not is_retriable(ValueError("bug"))


def _run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_a_transient_failure_is_retried_until_it_succeeds() -> None:
    calls, pauses = [], []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionResetError("blip")
        return "ok"

    async def no_sleep(seconds: float) -> None:
        pauses.append(seconds)

    assert _run(retry(flaky, what="t", sleep=no_sleep)) == "ok"
    assert len(calls) == 3
    assert len(pauses) == 2


def test_a_permanent_failure_is_not_retried() -> None:
    calls = []

    async def poison() -> None:
        calls.append(1)
        raise ValueError("never works")

    with pytest.raises(ValueError, match="never works"):
        _run(retry(poison, what="t"))
    assert len(calls) == 1


def test_retries_are_bounded() -> None:
    async def down() -> None:
        raise ConnectionRefusedError

    async def no_sleep(_: float) -> None:
        return None

    with pytest.raises(RetriesExhaustedError, match="still failing after 4 attempts"):
        _run(retry(down, what="redis", backoff=Backoff(attempts=4), sleep=no_sleep))
