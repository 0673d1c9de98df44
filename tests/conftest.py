"""Session-wide real servers for the test suite.

Where the servers come from, in order:
1. KAFKA_BOOTSTRAP_SERVERS / REDIS_URL when set (a cluster you already run);
2. testcontainers, when a Docker engine answers;
3. the native stack (`app.devstack`): Apache Kafka from Maven Central and Debian's redis-server,
   on free loopback ports in a temporary folder.
In CI (CI=true) a server that cannot be started is a failure, never a skip.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.devstack import processes
from app.devstack.kafka import KafkaCluster
from app.devstack.redis import RedisServer

# The S3-compatible server for the snapshot-store tests (SeaweedFS), found or started the same way.
pytest_plugins = ["tests.s3_server"]

REPO = Path(__file__).resolve().parent.parent
OUTBID = [sys.executable, "-m", "app.cli"]


@dataclass(frozen=True)
class Servers:
    kafka: str
    redis: str
    source: str  # "env", "testcontainers" or "native"


def _docker_answers() -> bool:
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return False
    import docker  # noqa: PLC0415

    try:
        client = docker.from_env(timeout=2)
    except Exception:
        return False
    try:
        return bool(client.ping())
    except Exception:
        return False
    finally:
        client.close()


@contextlib.contextmanager
def _containers() -> Iterator[Servers]:
    from testcontainers.community.kafka import KafkaContainer  # noqa: PLC0415
    from testcontainers.redis import RedisContainer  # noqa: PLC0415

    # cp-kafka 8.x is Apache Kafka 4.x; testcontainers' KafkaContainer knows its start-up dance.
    with (
        KafkaContainer("confluentinc/cp-kafka:8.0.0").with_kraft() as kafka,
        RedisContainer("redis:7") as redis,
    ):
        host, port = redis.get_container_host_ip(), redis.get_exposed_port(6379)
        yield Servers(kafka.get_bootstrap_server(), f"redis://{host}:{port}/0", "testcontainers")


@contextlib.contextmanager
def _native(root: Path) -> Iterator[Servers]:
    cluster = KafkaCluster(root / "kafka", port=processes.free_port_run(2), size=1)
    redis = RedisServer(root / "redis", port=processes.free_port())
    try:
        redis.start()
        cluster.start()
        yield Servers(cluster.bootstrap, redis.url, "native")
    finally:
        cluster.stop()
        redis.stop()


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    kafka, redis = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("REDIS_URL")
    if kafka and redis:
        yield Servers(kafka, redis, "env")
        return
    try:
        stack = _containers() if _docker_answers() else _native(tmp_path_factory.mktemp("stack"))
        with stack as found:
            yield found
    except Exception as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Kafka/Redis available for integration tests: {exc}")


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    """A unique topic/group prefix for one test, so tests never see each other's data."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-")
    return f"t-{name}-{uuid.uuid4().hex[:6]}."


@pytest.fixture
def outbid_env(servers: Servers, prefix: str, tmp_path: Path) -> dict[str, str]:
    """Environment for running `outbid` (or a worker) against the test servers and prefix."""
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": servers.kafka,
        "REDIS_URL": servers.redis,
        "OUTBID_TOPIC_PREFIX": prefix,
        "OUTBID_STATE_DIR": str(tmp_path / "state"),
    }


def run_outbid(
    *args: str, env: dict[str, str], input: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real `outbid` CLI in a subprocess, as a user would."""
    return subprocess.run(
        [*OUTBID, *args],
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=REPO,
    )
