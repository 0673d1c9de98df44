"""Redis goes away for 10 s under load; the read model catches up with nothing missing, and the
engine does not wait for it (its views are written by a sink thread that retries)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.devstack import processes
from app.devstack.redis import RedisServer
from app.sample import sample_commands
from tests.conftest import run_outbid
from tests.e2e.conftest import Pipeline, produce_commands
from tests.e2e.test_pipeline import expected_views, wait_until_views_match

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _produce(line: Pipeline, prefix: str, seed: int) -> dict[str, dict[str, object]]:
    commands = list(sample_commands(auctions=15, bids_per_auction=5, seed=seed, prefix=prefix))
    produce_commands(line, commands)
    return expected_views(commands)


def test_redis_outage_of_10_s_is_retried_and_the_model_catches_up(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    redis = RedisServer(tmp_path / "redis", port=processes.free_port())
    redis.start()
    try:
        pipeline.env["REDIS_URL"] = redis.url
        pipeline.start(1)
        before = _produce(pipeline, "B", seed=1)
        wait_until_views_match(pipeline.urls(), before)
        redis.stop()  # graceful: Redis writes its append-only file before it exits
        during = _produce(pipeline, "D", seed=2)
        time.sleep(10)
        redis.start()
        # The tables answer at once (the engine goes on while Redis is down: its sink thread
        # retries); Redis catches up within a backoff step (at most 5 s) of coming back.
        wait_until_views_match(pipeline.urls(), {**before, **during})
        wait_until_views_match(pipeline.urls(), {**before, **during}, query="?source=redis")
        audit = run_outbid("verify", env=pipeline.env)
        assert audit.returncode == 0, audit.stdout
        assert "Redis read model == fold(events)" in audit.stdout
        log = pipeline.specs[0].log_file.read_text(errors="replace")
        assert "redis write of" in log  # the retries were logged
        assert processes.alive(pipeline.pids[1])  # and the worker never gave up
    finally:
        redis.stop()
