"""A session-wide real S3-compatible server for the snapshot tests (a pytest plugin).

Where it comes from, in order, like Kafka and Redis (tests/conftest.py):
1. OUTBID_S3_ENDPOINT_URL with OUTBID_S3_ACCESS_KEY_ID / OUTBID_S3_SECRET_ACCESS_KEY (a server you run);
2. testcontainers, when a Docker engine answers (the SeaweedFS image);
3. native: SeaweedFS built from its Go module (app/devstack/seaweedfs.py), cached after the first build.
In CI (CI=true) a server that cannot be started is a failure, never a skip.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.devstack import processes
from app.devstack.seaweedfs import SeaweedS3


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    source: str  # "env", "testcontainers" or "native"

    def env(self, bucket: str, prefix: str) -> dict[str, str]:
        """Settings that point a worker or the CLI at s3://bucket/prefix on this server."""
        return {
            "OUTBID_SNAPSHOT_URL": f"s3://{bucket}/{prefix}",
            "OUTBID_S3_ENDPOINT_URL": self.endpoint,
            "OUTBID_S3_ACCESS_KEY_ID": self.access_key,
            "OUTBID_S3_SECRET_ACCESS_KEY": self.secret_key,
        }


@contextlib.contextmanager
def _container(root: Path) -> Iterator[S3Server]:
    from testcontainers.core.container import DockerContainer  # noqa: PLC0415
    from testcontainers.core.waiting_utils import wait_for_logs  # noqa: PLC0415

    key, secret = "outbid", uuid.uuid4().hex
    config = root / "s3.json"
    identity = {"accessKey": key, "secretKey": secret}
    config.write_text(
        json.dumps(
            {"identities": [{"name": "outbid", "credentials": [identity], "actions": ["Admin"]}]}
        )
    )
    container = (
        DockerContainer("chrislusf/seaweedfs:latest")
        .with_command("server -s3 -s3.config=/etc/s3.json -master.telemetry=false")
        .with_volume_mapping(str(config), "/etc/s3.json")
        .with_exposed_ports(8333)
    )
    with container:
        wait_for_logs(container, "Start Seaweed S3 API Server", timeout=120)
        host, port = container.get_container_host_ip(), container.get_exposed_port(8333)
        yield S3Server(f"http://{host}:{port}", key, secret, "testcontainers")


@contextlib.contextmanager
def _native(root: Path) -> Iterator[S3Server]:
    server = SeaweedS3(root, port=processes.free_port())
    try:
        server.start()
        yield S3Server(server.endpoint, server.access_key, server.secret_key, "native")
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    endpoint = os.environ.get("OUTBID_S3_ENDPOINT_URL")
    if endpoint:
        yield S3Server(
            endpoint,
            os.environ.get("OUTBID_S3_ACCESS_KEY_ID", ""),
            os.environ.get("OUTBID_S3_SECRET_ACCESS_KEY", ""),
            "env",
        )
        return
    from tests.conftest import _docker_answers  # noqa: PLC0415

    root = tmp_path_factory.mktemp("s3")
    try:
        with _container(root) if _docker_answers() else _native(root) as found:
            yield found
    except Exception as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no S3-compatible server available: {exc}")


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A fresh bucket per test."""
    import boto3  # noqa: PLC0415

    name = f"outbid-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint,
        region_name="us-east-1",
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key=s3_server.secret_key,
    ).create_bucket(Bucket=name)
    return name
