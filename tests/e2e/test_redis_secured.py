"""Redis with a password (requirepass) and over TLS (rediss://): the read model and a worker
use it, a client without the password is refused, and the password is never printed."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from app.devstack import processes
from app.devstack.redis import RedisServer
from app.devstack.workers import get_json
from app.readmodel import ReadModel
from app.settings import Settings
from tests.conftest import run_outbid
from tests.e2e.conftest import Pipeline

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
PASSWORD = "pw-Xq7:z/9@never-printed"
OPEN = {
    "auction_id": "RS-1",
    "seller_id": "s",
    "starting_price": 100,
    "min_increment": 10,
    "currency": "EUR",
    "closes_at": "2030-01-01T00:00:00Z",
}


@pytest.fixture(params=["password", "tls"])
def secured_redis(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(
        tmp_path / "redis",
        port=processes.free_port(),
        password=PASSWORD,
        tls=request.param == "tls",
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_a_worker_and_the_read_model_use_a_redis_with_a_password_and_tls(
    pipeline: Pipeline, secured_redis: RedisServer
) -> None:
    url = secured_redis.url
    assert url.startswith("rediss://" if secured_redis.tls else "redis://")
    anonymous = dataclasses.replace(secured_redis, password=None).url
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(anonymous).ping()

    pipeline.env["REDIS_URL"] = url
    pipeline.start(1)
    worker = pipeline.urls()[0]
    request = urllib.request.Request(
        f"{worker}/auctions", data=json.dumps(OPEN).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        opened = json.loads(answer.read())
    status, view = get_json(f"{worker}{opened['read']}&wait_ms=20000&source=redis", timeout=30)
    assert (status, view["caught_up"], view["source"]) == (200, True, "redis"), view

    settings = Settings(redis_url=url, topic_prefix=pipeline.prefix)  # type: ignore[arg-type]

    async def read() -> dict[str, object] | None:
        model = ReadModel(settings)
        try:
            return await model.get("RS-1")
        finally:
            await model.close()

    stored = asyncio.run(read())
    assert stored is not None
    assert stored["status"] == "open"
    assert PASSWORD not in repr(settings)
    pipeline.stop()
    assert PASSWORD not in pipeline.specs[0].log_file.read_text()


def test_dev_status_never_prints_the_redis_password(
    outbid_env: dict[str, str], secured_redis: RedisServer
) -> None:
    env = {**outbid_env, "REDIS_URL": secured_redis.url}
    up = run_outbid("dev", "up", env=env)
    assert up.returncode == 0, up.stderr
    for args in (("dev", "status"), ("dev", "status", "--json")):
        shown = run_outbid(*args, env=env)
        assert shown.returncode == 0, shown.stderr
        assert PASSWORD not in shown.stdout + shown.stderr
        assert "***" in shown.stdout
    assert PASSWORD not in up.stdout + up.stderr
