"""`outbid dev up|down|status`: the local stack and its state file (.outbid/stack.json)."""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from app.devstack import processes
from app.devstack.kafka import KafkaCluster
from app.devstack.redis import RedisServer
from app.settings import Settings

log = logging.getLogger(__name__)


@dataclass(slots=True)
class StackState:
    kafka: str
    redis: str
    kafka_external: bool = False
    redis_external: bool = False
    kafka_port: int = 9092
    kafka_nodes: dict[str, int] = field(default_factory=dict)  # node id -> pid
    redis_pid: int | None = None
    workers: list[dict[str, Any]] = field(default_factory=list)  # {"url", "pid", "data_dir"}

    def public(self) -> dict[str, Any]:
        return {
            "kafka": self.kafka,
            "redis": self.redis,
            "workers": [w["url"] for w in self.workers],
        }


def state_file(settings: Settings) -> Path:
    return settings.state_dir / "stack.json"


def load_state(settings: Settings) -> StackState | None:
    path = state_file(settings)
    if not path.exists():
        return None
    return StackState(**json.loads(path.read_text()))


def save_state(settings: Settings, state: StackState) -> None:
    path = state_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    tmp.replace(path)


def external(name: str) -> str | None:
    value = os.environ.get(name)
    return value or None


DEFAULT_KAFKA_PORT = 9092
DEFAULT_REDIS_PORT = 6379


def _default_ports(brokers: int, kafka_port: int | None, redis_port: int | None) -> tuple[int, int]:
    """Ports the user did not choose: the defaults, or free ones when something else holds them
    (Debian's redis-server package, for one, starts a system Redis on 6379 when installed)."""
    if kafka_port is None:
        kafka_port = DEFAULT_KAFKA_PORT
        if not all(processes.port_free(kafka_port + i) for i in range(2 * brokers)):
            kafka_port = processes.free_port_run(2 * brokers)
            log.warning("port %d is busy: Kafka uses %d instead", DEFAULT_KAFKA_PORT, kafka_port)
    if redis_port is None:
        redis_port = DEFAULT_REDIS_PORT
        if not processes.port_free(redis_port):
            redis_port = processes.free_port()
            log.warning("port %d is busy: Redis uses %d instead", DEFAULT_REDIS_PORT, redis_port)
    return kafka_port, redis_port


def up(
    settings: Settings,
    brokers: int = 1,
    kafka_port: int | None = None,
    redis_port: int | None = None,
) -> StackState:
    """Start what is not already given by KAFKA_BOOTSTRAP_SERVERS / REDIS_URL."""
    current = load_state(settings)
    if current and _running(current):
        log.info("stack already running")
        return current
    kafka_port, redis_port = _default_ports(brokers, kafka_port, redis_port)
    kafka_data = settings.state_dir / "kafka"
    if current and current.kafka_nodes and len(current.kafka_nodes) != brokers:
        shutil.rmtree(
            kafka_data, ignore_errors=True
        )  # a different cluster shape needs fresh storage
    ext_kafka = external("KAFKA_BOOTSTRAP_SERVERS")
    ext_redis = external("REDIS_URL")
    state = StackState(
        kafka=ext_kafka or "",
        redis=ext_redis or "",
        kafka_external=bool(ext_kafka),
        redis_external=bool(ext_redis),
        kafka_port=kafka_port,
    )
    started: list[int] = []
    try:
        if not ext_redis:
            redis = RedisServer(settings.state_dir / "redis", port=redis_port)
            redis.start()
            state.redis, state.redis_pid = redis.url, redis.pid
            started.append(redis.pid or 0)
        if not ext_kafka:
            cluster = KafkaCluster(
                kafka_data, port=kafka_port, size=brokers, heap=settings.kafka_heap
            )
            try:
                cluster.start()
            finally:
                started.extend(cluster.pids.values())
            state.kafka = cluster.bootstrap
            state.kafka_nodes = {str(k): v for k, v in cluster.pids.items()}
    except BaseException:
        for pid in started:
            processes.stop(pid)
        raise
    save_state(settings, state)
    return state


def _running(state: StackState) -> bool:
    pids = [*state.kafka_nodes.values(), *([state.redis_pid] if state.redis_pid else [])]
    return bool(pids) and all(processes.alive(p) for p in pids)


def down(settings: Settings, wipe: bool = False) -> list[str]:
    """Stop every process the state file knows (workers first), return what was stopped."""
    state = load_state(settings)
    stopped = []
    if state:
        for worker in state.workers:
            processes.stop(int(worker["pid"]))
            stopped.append(f"worker {worker['url']}")
        for node, pid in state.kafka_nodes.items():
            processes.stop(pid)
            stopped.append(f"kafka node {node} (pid {pid})")
        if state.redis_pid:
            processes.stop(state.redis_pid)
            stopped.append(f"redis (pid {state.redis_pid})")
        state_file(settings).unlink(missing_ok=True)
    if wipe:
        for sub in ("kafka", "redis", "workers"):
            shutil.rmtree(settings.state_dir / sub, ignore_errors=True)
        # The stack's table snapshots are of the topics just deleted: a new cluster's workers
        # would reject them as foreign anyway (app/topics/incarnation.py), but they cost a lookup
        # at every assignment and disk until retention. A shared snapshot folder keeps other apps'.
        shutil.rmtree(settings.snapshot_root / settings.group_id, ignore_errors=True)
    return stopped


def status(settings: Settings) -> dict[str, Any]:
    state = load_state(settings)
    if state is None:
        return {
            "kafka": external("KAFKA_BOOTSTRAP_SERVERS") or "",
            "redis": external("REDIS_URL") or "",
            "workers": [],
            "running": False,
        }
    public = state.public()
    public["running"] = _running(state) or (state.kafka_external and state.redis_external)
    public["processes"] = {
        **{
            f"kafka-{k}": {"pid": v, "alive": processes.alive(v)}
            for k, v in state.kafka_nodes.items()
        },
        **(
            {"redis": {"pid": state.redis_pid, "alive": processes.alive(state.redis_pid)}}
            if state.redis_pid
            else {}
        ),
        **{
            f"worker-{i + 1}": {"pid": w["pid"], "alive": processes.alive(int(w["pid"]))}
            for i, w in enumerate(state.workers)
        },
    }
    return public
