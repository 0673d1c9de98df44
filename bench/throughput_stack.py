"""Servers, topics and worker processes for `outbid bench throughput`, and what the machine is.

Uses the servers named by KAFKA_BOOTSTRAP_SERVERS / REDIS_URL when both are set; otherwise
starts a private Kafka and Redis (app.devstack) on free loopback ports in a scratch folder and
stops them at the end. Every measurement gets its own topic prefix, created from topics.yaml.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any

from app.devstack import processes
from app.devstack import workers as worker_procs
from app.devstack.kafka import KafkaCluster
from app.devstack.redis import RedisServer
from app.errors import DevStackError
from app.settings import REPO_ROOT, Settings
from app.topics import admin, load_topics
from bench.throughput_stats import counter_total

log = logging.getLogger(__name__)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")  # the unit of /proc/<pid>/stat's CPU times


@dataclass(frozen=True, slots=True)
class Servers:
    kafka: str
    redis: str
    private: bool
    broker_pids: tuple[int, ...] = ()  # a private stack's Kafka processes (their CPU is measured)


@contextlib.contextmanager
def servers(root: Path, kafka_heap: str) -> Iterator[Servers]:
    kafka, redis = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("REDIS_URL")
    if kafka and redis:
        yield Servers(kafka, redis, private=False)
        return
    cluster = KafkaCluster(root / "kafka", port=processes.free_port_run(2), size=1, heap=kafka_heap)
    redis_server = RedisServer(root / "redis", port=processes.free_port())
    try:
        redis_server.start()
        cluster.start()
        yield Servers(
            cluster.bootstrap,
            redis_server.url,
            private=True,
            broker_pids=tuple(cluster.pids.values()),
        )
    finally:
        cluster.stop()
        redis_server.stop()


def create_topics(settings: Settings) -> int:
    """Every topics.yaml topic under settings.topic_prefix; returns the co-partitioned count."""
    spec = load_topics(settings.topics_file)
    client = admin.admin_client(settings.kafka_client_config())
    prefix = settings.topic_prefix
    admin.apply(
        admin.plan(spec, client, settings.kafka_client_config(), prefix), spec, client, prefix
    )
    return spec.partitions("bid-commands")


def delete_topics(settings: Settings) -> None:
    """Remove one run's topics (only on servers we did not start: a private stack is discarded)."""
    spec = load_topics(settings.topics_file)
    client = admin.admin_client(settings.kafka_client_config())
    names = [t.name for t in spec.resolve(1, settings.topic_prefix)]
    for future in client.delete_topics(names, operation_timeout=30).values():
        with contextlib.suppress(Exception):  # already gone, or never created
            future.result(30)


def delete_redis_keys(url: str, prefix: str) -> None:
    import redis  # noqa: PLC0415 - only needed for clean-up on shared servers

    client = redis.Redis.from_url(url)
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}*", count=1_000):
            batch.append(key)
            if len(batch) >= 1_000:
                client.unlink(*batch)
                batch.clear()
        if batch:
            client.unlink(*batch)
    finally:
        client.close()


@dataclass(frozen=True, slots=True)
class Counters:
    """What the workers report having done, summed over their /metrics."""

    commands: float = 0.0  # command records consumed in committed transactions
    events: float = 0.0  # decision events written
    views: float = 0.0  # views committed (each is then written to Redis)
    redis: float = 0.0  # views written to Redis (applied, or stale and skipped)
    transactions: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Counters:
        return cls(
            counter_total(text, "outbid_commands_total"),
            counter_total(text, "outbid_events_total"),
            counter_total(
                text,
                "outbid_projection_events_total",
                {"projection": "highest_bids", "result": "applied"},
            ),
            counter_total(text, "outbid_redis_writes_total"),
            counter_total(text, "outbid_transaction_records_count"),
        )

    def __add__(self, other: Counters) -> Counters:
        return Counters(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))


@dataclass
class Workers:
    """The processes of one measurement: `faust -A app worker`, started as `outbid dev up
    --workers N` starts them (app/devstack/workers.py), ready once each /readyz answers 200."""

    root: Path
    env: dict[str, str]
    specs: list[worker_procs.WorkerSpec] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)

    def start(self, count: int) -> None:
        for index in range(1, count + 1):
            spec = worker_procs.WorkerSpec(
                index, processes.free_port(), self.root / f"worker-{index}"
            )
            self.specs.append(spec)
            self.pids.append(worker_procs.start(spec, self.env))
        worker_procs.wait_ready(self.specs, self.pids)

    def peak_rss_mb(self) -> list[float]:
        return [peak_rss_mb(pid) for pid in self.pids]

    def metrics(self, index: int = 0) -> str:
        try:
            with urllib.request.urlopen(f"{self.specs[index].url}/metrics", timeout=10) as resp:  # noqa: S310 - our own loopback worker
                return str(resp.read().decode())
        except OSError:
            return ""

    def each(self) -> list[Counters]:
        return [Counters.parse(self.metrics(index)) for index in range(len(self.specs))]

    def counters(self) -> Counters:
        total = Counters()
        for counters in self.each():
            total += counters
        return total

    def wait_written(self, commands: int, *, redis: bool, timeout_s: float = 60.0) -> Counters:
        """Until the workers have finished with `commands` command records: their transactions'
        after-commit work is done (the commands are counted) and, with Redis on, every committed
        view has been written to Redis (the engine counts the views, then writes them)."""
        deadline = time.monotonic() + timeout_s
        previous: tuple[float, ...] = ()
        while True:
            now = self.counters()
            seen = (now.commands, now.views, now.redis)
            if now.commands >= commands and (not redis or now.redis >= now.views):
                # twice the same: a transaction counts its commands a moment before its views
                if seen == previous:
                    return now
                previous = seen
            else:
                previous = ()
            if time.monotonic() > deadline:
                raise DevStackError(
                    f"the workers counted {now.commands:.0f}/{commands} commands and wrote "
                    f"{now.redis:.0f}/{now.views:.0f} views to Redis after {timeout_s:.0f}s; "
                    f"see {self.specs[0].log_file}"
                )
            time.sleep(0.02)

    def stop(self) -> None:
        for pid in self.pids:
            processes.stop(pid)
        self.pids.clear()


def cpu_seconds(pids: list[int] | tuple[int, ...]) -> float | None:
    """User + system CPU seconds the processes have used so far (None: one of them is gone)."""
    total = 0.0
    for pid in pids:
        fields = processes.stat_fields(pid)
        if fields is None:
            return None
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def peak_rss_mb(pid: int) -> float:
    """VmHWM of a process (its peak resident set), in MiB; 0.0 when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, flags=re.MULTILINE)
    return round(int(found.group(1)) / 1024, 1) if found else 0.0


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return (round(one, 2), round(five, 2), round(fifteen, 2))


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError, AttributeError):
        found = re.search(r"^MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text(), re.MULTILINE)
        mem_kb = int(found.group(1)) if found else 0
    kafka = re.search(
        r"<kafka.version>([^<]+)<", (REPO_ROOT / "infra" / "kafka" / "pom.xml").read_text()
    )
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "kafka": kafka.group(1) if kafka else "unknown",
        "faust_streaming": _version("faust-streaming"),
        "confluent_kafka": _version("confluent-kafka"),
        "load_avg_start": load_average(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def source_revision() -> dict[str, Any]:
    """The git commit measured (`git rev-parse HEAD`) and whether the working tree differs from
    it (changed or untracked files: what ran is then not exactly that commit)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(status.strip())}
