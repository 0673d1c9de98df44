"""`outbid dev down --wipe`, then `outbid dev up --workers 2`: a new cluster, no old state served.

Before topic incarnations (app/topics/incarnation.py) the workers of the new cluster restored the
previous cluster's table snapshots (the snapshot folder survived the wipe).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from app.chaos import lag
from app.devstack import processes
from tests.conftest import run_outbid

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
GROUP = "outbid"  # no topic prefix: the stack's own group id


def stack_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL")}
    env |= {
        "OUTBID_STATE_DIR": str(tmp_path / "state"),
        "OUTBID_SNAPSHOT_INTERVAL_S": "1",  # snapshots of the first cluster, soon
        "OUTBID_SNAPSHOT_EVERY_WRITES": "50",
        "OUTBID_TOPIC_PREFIX": "",
    }
    return env


def up(env: dict[str, str], kafka_port: int, redis_port: int) -> None:
    ports = ["--kafka-port", str(kafka_port), "--redis-port", str(redis_port)]
    started = run_outbid("dev", "up", "--workers", "2", *ports, env=env, timeout=300)
    assert started.returncode == 0, started.stdout + started.stderr


def clients(env: dict[str, str], kafka_port: int, redis_port: int) -> dict[str, str]:
    """The environment of a client of the stack (with these set, `dev up` would start nothing)."""
    return env | {
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka_port}",
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
    }


def load_and_catch_up(env: dict[str, str], bootstrap: str, run_id: str, commands: int) -> None:
    args = ["--commands", str(commands), "--auctions", "200", "--run-id", run_id]
    sent = run_outbid("loadgen", *args, env=env)
    assert sent.returncode == 0, sent.stderr
    deadline = time.monotonic() + 180
    while lag({"bootstrap.servers": bootstrap}, GROUP, ["bid-commands"], 8) != 0:
        assert time.monotonic() < deadline, "the workers did not catch up"
        time.sleep(0.5)


def snapshots_of(env: dict[str, str]) -> list[Path]:
    return sorted((Path(env["OUTBID_STATE_DIR"]) / "snapshots" / GROUP).rglob("*.json"))


def test_wipe_then_up_serves_no_state_of_the_old_cluster_and_verify_passes(
    tmp_path: Path,
) -> None:
    env = stack_env(tmp_path)
    kafka_port, redis_port = processes.free_port_run(2), processes.free_port()
    bootstrap = f"127.0.0.1:{kafka_port}"
    client = clients(env, kafka_port, redis_port)
    up(env, kafka_port, redis_port)
    try:
        load_and_catch_up(client, bootstrap, "OLD", 3000)
        deadline = time.monotonic() + 60
        while not snapshots_of(env):
            assert time.monotonic() < deadline, "no table snapshot was taken"
            time.sleep(0.5)
    finally:
        down = run_outbid("dev", "down", "--wipe", env=env, timeout=120)
    assert down.returncode == 0, down.stderr
    assert snapshots_of(env) == []  # the wipe took the stack's snapshots with it

    up(env, kafka_port, redis_port)
    try:
        load_and_catch_up(client, bootstrap, "NEW", 5000)  # longer than the old topics
        status = run_outbid("dev", "status", "--json", env=env)
        assert status.returncode == 0, status.stderr
        processes_now = json.loads(status.stdout)["processes"]
        workers = {k: v for k, v in processes_now.items() if k.startswith("worker-")}
        assert len(workers) == 2
        assert all(w["alive"] for w in workers.values())  # none stopped (was: ConsistencyError)
        verified = run_outbid("verify", env=client, timeout=300)
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        run_outbid("dev", "down", "--wipe", env=env, timeout=120)
