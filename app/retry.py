"""Retrying transient failures with exponential backoff and full jitter, bounded.

Used around one message's handling: the stream waits while it retries, so the partition's
order is kept. A failure that is not retriable is the record's fault (a poison record): the
caller dead-letters it. A retriable failure that outlasts the budget is the infrastructure's
fault: the caller stops the worker so its partitions move on from the committed offset, and
nothing is skipped.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from redis import exceptions as redis_errors

from app.errors import OutbidError

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Backoff:
    initial_s: float = 0.1
    factor: float = 2.0
    max_s: float = 5.0
    attempts: int = 12  # about 30 s of trying with the defaults

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Full jitter: uniform in [0, min(max, initial * factor**attempt)] (AWS architecture blog)."""
        cap = min(self.max_s, self.initial_s * self.factor**attempt)
        return (rng or random).uniform(0, cap)


def is_retriable(exc: BaseException) -> bool:
    """Errors that may go away by themselves: network, timeouts, and ours marked `retriable`."""
    if isinstance(exc, OutbidError):
        return exc.retriable
    if isinstance(exc, (ConnectionError, TimeoutError, asyncio.TimeoutError)):
        return True
    if isinstance(
        exc,
        (redis_errors.ConnectionError, redis_errors.TimeoutError, redis_errors.BusyLoadingError),
    ):
        return True
    retriable = getattr(exc, "retriable", None)  # aiokafka errors carry it on the class
    return bool(retriable) if retriable is not None else False


class RetriesExhaustedError(OutbidError):
    """A transient failure did not go away within the retry budget.

    Still retriable: the caller gives up on this attempt (the worker stops and its partitions
    are re-processed), the record itself is not at fault and must not be dead-lettered.
    """

    retriable = True


async def retry(
    call: Callable[[], Awaitable[T]],
    *,
    what: str,
    backoff: Backoff = Backoff(),
    on_retry: Callable[[int, float, BaseException], None] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """`await call()`, retrying retriable failures; non-retriable ones propagate at once."""
    for attempt in range(backoff.attempts):
        try:
            return await call()
        except Exception as exc:
            await sleep(_pause_or_raise(exc, attempt, what, backoff, on_retry))
    raise AssertionError("unreachable")  # pragma: no cover


def retry_blocking(
    call: Callable[[], T],
    *,
    what: str,
    backoff: Backoff = Backoff(),
    on_retry: Callable[[int, float, BaseException], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`retry` for synchronous callers (the engine, app/engine/loop.py)."""
    for attempt in range(backoff.attempts):
        try:
            return call()
        except Exception as exc:
            sleep(_pause_or_raise(exc, attempt, what, backoff, on_retry))
    raise AssertionError("unreachable")  # pragma: no cover


def _pause_or_raise(
    exc: Exception,
    attempt: int,
    what: str,
    backoff: Backoff,
    on_retry: Callable[[int, float, BaseException], None] | None,
) -> float:
    """How long to wait before the next attempt; raises when `exc` must not be retried."""
    if not is_retriable(exc):
        raise exc
    if attempt == backoff.attempts - 1:
        raise RetriesExhaustedError(
            f"{what}: still failing after {backoff.attempts} attempts: {exc!r}"
        ) from exc
    pause = backoff.delay(attempt)
    log.warning(
        "%s failed (%r); retry %d/%d in %.2fs", what, exc, attempt + 1, backoff.attempts - 1, pause
    )
    if on_retry:
        on_retry(attempt + 1, pause, exc)
    return pause
