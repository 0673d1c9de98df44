"""The per-principal token bucket behind 429 and Retry-After."""

from __future__ import annotations

import pytest

from app.auth.ratelimit import RateLimiter, retry_after


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_passes_then_the_next_request_waits_one_interval() -> None:
    clock = Clock()
    limiter = RateLimiter(2.0, 3, clock=clock)
    assert [limiter.acquire("alice") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("alice") == pytest.approx(0.5)


def test_tokens_come_back_at_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(2.0, 1, clock=clock)
    assert limiter.acquire("alice") == 0.0
    assert limiter.acquire("alice") > 0
    clock.now += 0.5
    assert limiter.acquire("alice") == 0.0


def test_principals_have_separate_buckets() -> None:
    clock = Clock()
    limiter = RateLimiter(1.0, 1, clock=clock)
    assert limiter.acquire("alice") == 0.0
    assert limiter.acquire("alice") > 0
    assert limiter.acquire("bob") == 0.0


def test_an_idle_bucket_refills_to_the_burst_and_no_more() -> None:
    clock = Clock()
    limiter = RateLimiter(10.0, 2, clock=clock)
    limiter.acquire("alice")
    clock.now += 3600
    assert [limiter.acquire("alice") for _ in range(3)][-1] > 0


def test_idle_principals_are_forgotten() -> None:
    clock = Clock()
    limiter = RateLimiter(10.0, 2, clock=clock)
    for i in range(100):
        limiter.acquire(f"p{i}")
    clock.now += 1
    limiter.acquire("alice")
    assert len(limiter._buckets) == 1  # the memory bound is the behaviour


@pytest.mark.parametrize(("wait", "header"), [(0.01, "1"), (1.0, "1"), (1.2, "2"), (30.0, "30")])
def test_retry_after_is_whole_seconds_rounded_up(wait: float, header: str) -> None:
    assert retry_after(wait) == header


def test_a_nonsensical_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="rate_per_s"):
        RateLimiter(0, 1)
