"""`outbid dev up|down|status` and the three-node cluster, with real processes."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from app.devstack import processes
from app.devstack.kafka import KafkaCluster
from app.topics import admin as topics_admin
from app.topics import load_topics
from tests.conftest import REPO, run_outbid

pytestmark = pytest.mark.integration


def _own_stack_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL")}
    env["OUTBID_STATE_DIR"] = str(tmp_path / "state")
    return env


@pytest.mark.slow
def test_dev_up_starts_kafka_and_redis_and_dev_down_leaves_no_process(tmp_path: Path) -> None:
    env = _own_stack_env(tmp_path)
    kafka_port, redis_port = processes.free_port_run(2), processes.free_port()
    up = run_outbid(
        "dev", "up", "--kafka-port", str(kafka_port), "--redis-port", str(redis_port), env=env
    )
    assert up.returncode == 0, up.stderr
    try:
        status = json.loads(run_outbid("dev", "status", "--json", env=env).stdout)
        assert status["kafka"] == f"127.0.0.1:{kafka_port}"
        assert status["redis"] == f"redis://127.0.0.1:{redis_port}/0"
        assert status["workers"] == []
        pids = [p["pid"] for p in status["processes"].values()]
        assert len(pids) == 2
        assert all(processes.alive(pid) for pid in pids)
        brokers = (
            AdminClient({"bootstrap.servers": status["kafka"]}).list_topics(timeout=10).brokers
        )
        assert len(brokers) == 1
    finally:
        down = run_outbid("dev", "down", env=env)
    assert down.returncode == 0, down.stderr
    assert not any(processes.alive(pid) for pid in pids)
    assert processes.port_free(kafka_port)
    assert processes.port_free(redis_port)


def test_dev_up_with_external_servers_starts_nothing(tmp_path: Path, servers: object) -> None:
    env = _own_stack_env(tmp_path)
    env["KAFKA_BOOTSTRAP_SERVERS"], env["REDIS_URL"] = "127.0.0.1:1", "redis://127.0.0.1:2/0"
    up = run_outbid("dev", "up", env=env)
    assert up.returncode == 0, up.stderr
    assert "(external)" in up.stdout
    status = json.loads(run_outbid("dev", "status", "--json", env=env).stdout)
    assert status["kafka"] == "127.0.0.1:1"
    assert status["processes"] == {}
    assert run_outbid("dev", "down", env=env).stdout.strip() == "nothing was running"


def test_dev_up_on_a_busy_port_says_so_without_a_traceback(tmp_path: Path) -> None:
    env = _own_stack_env(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        up = run_outbid(
            "dev",
            "up",
            "--redis-port",
            str(port),
            "--kafka-port",
            str(processes.free_port_run(2)),
            env=env,
        )
    assert up.returncode == 2
    assert f"port {port} (for Redis) is already in use" in up.stderr
    assert "Traceback" not in up.stderr


@pytest.mark.slow
def test_three_node_cluster_gives_a_replication_factor_3_topic_three_in_sync_replicas(
    tmp_path: Path,
) -> None:
    cluster = KafkaCluster(tmp_path / "kafka", port=processes.free_port_run(6), size=3)
    try:
        cluster.start()
        spec = load_topics(REPO / "topics.yaml")
        client = topics_admin.admin_client(cluster.client_config)
        plan = topics_admin.plan(spec, client, cluster.client_config, "rf3.")
        assert plan.brokers == 3
        topics_admin.apply(plan, spec, client, "rf3.")
        deadline = time.monotonic() + 30
        while True:  # new topics reach every broker's metadata cache shortly after creation
            events = client.list_topics(timeout=10).topics.get("rf3.auction-events")
            if (
                events is not None
                and len(events.partitions) == 8
                and all(len(p.isrs) == 3 for p in events.partitions.values())
            ):
                break
            assert time.monotonic() < deadline, (
                f"ISRs never reached 3: {events and events.partitions}"
            )
            time.sleep(0.5)
        for partition in events.partitions.values():
            assert sorted(partition.replicas) == [1, 2, 3]
            assert sorted(partition.isrs) == [1, 2, 3]
        # min.insync.replicas follows the cluster: 2 of 3, without editing topics.yaml. Each
        # broker answers metadata from its own cache, which learns new topics a moment after
        # the one asked above: settle asks until the plan stays empty.
        left = topics_admin.settle(spec, client, cluster.client_config, "rf3.")
        assert left.changes == []
        assert spec.resolve(3)[0].configs["min.insync.replicas"] == "2"
    finally:
        cluster.stop()
    assert not cluster.pids
