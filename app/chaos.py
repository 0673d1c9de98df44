"""The chaos run: real brokers and workers on loopback, killed and restarted under load.

Three Kafka nodes (replication factor 3, min.insync.replicas 2), N workers, a load generator at
a steady rate with duplicates and garbage; every few seconds one worker is `kill -9`ed and
restarted, and once a broker is killed and restarted. When the load stops and the workers
catch up, `outbid verify` must find every invariant intact.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, TopicPartition
from pydantic import SecretStr

from app import loadgen
from app.audit.checks import Findings
from app.audit.verify import verify
from app.devstack import processes
from app.devstack import workers as worker_procs
from app.devstack.kafka import KafkaCluster
from app.devstack.redis import RedisServer
from app.errors import KafkaUnavailableError
from app.settings import Settings
from app.topics import admin, load_topics
from app.topics.spec import COMMANDS

log = logging.getLogger(__name__)


OPEN_TRANSACTIONS_TIMEOUT_S = 90.0  # the engine's transaction.timeout.ms (30 s) and then some
MAX_LAG_FAILURES = 60  # consecutive failed lag reads before the run gives up


@dataclass(frozen=True, slots=True)
class ChaosSpec:
    commands: int = 100_000
    rate: float = 2_000.0
    auctions: int = 1_000
    workers: int = 3
    brokers: int = 3
    kill_every_s: float = 6.0
    restart_after_s: float = 2.0
    broker_kill: bool = True
    catch_up_timeout_s: float = 600.0
    seed: int = 1


@dataclass
class ChaosResult:
    sent: dict[str, int] = field(default_factory=dict)
    worker_kills: int = 0
    worker_exits: int = 0  # stopped by themselves (and restarted, as a supervisor would)
    broker_kills: int = 0
    rebalances: int = 0
    load_seconds: float = 0.0
    catch_up_seconds: float = 0.0
    # after catch-up, until no partition had an open transaction (a killed worker's, aborted by
    # the broker at its transaction timeout when no restarted worker fenced it first)
    open_transactions_seconds: float = 0.0
    findings: Findings | None = None

    def as_json(self) -> dict[str, object]:
        f = self.findings
        return {
            "sent": self.sent,
            "worker_kills": self.worker_kills,
            "worker_exits": self.worker_exits,
            "broker_kills": self.broker_kills,
            "rebalances": self.rebalances,
            "load_seconds": round(self.load_seconds, 1),
            "catch_up_seconds": round(self.catch_up_seconds, 1),
            "open_transactions_seconds": self.open_transactions_seconds,
            "duplicates_absorbed": f.counts["duplicates_absorbed"] if f else None,
            "dead_letters": f.counts["dead_letters"] if f else None,
            "verify_ok": f.ok if f else None,
            "problems": {
                k: {"count": f.problem_counts[k], "examples": v[:3]} for k, v in f.problems.items()
            }
            if f
            else None,
        }


def lag(bootstrap: str, group: str, topics: list[str], partitions: int) -> int:
    """Records not yet processed by `group` (read_committed; transaction markers do not count)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "logger": logging.getLogger("librdkafka"),
        }
    )
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(partitions)]
        total = 0
        for tp in consumer.committed(tps, timeout=15):
            low, high = consumer.get_watermark_offsets(tp, timeout=15, cached=False)
            position = tp.offset if tp.offset >= 0 else low
            if high - position == 1:
                # A transactional partition ends with a commit marker, which is never delivered
                # and never "consumed": look whether the last offset holds a record at all.
                consumer.assign([TopicPartition(tp.topic, tp.partition, position)])
                msg = consumer.poll(1.0)
                consumer.unassign()
                total += int(msg is not None and not msg.error() and msg.offset() == position)
            else:
                total += max(0, high - position)
        return total
    finally:
        consumer.close()


def open_partitions(bootstrap: str, topics: list[str]) -> list[str]:
    """Partitions whose last stable offset is below their high watermark (a transaction open)."""
    readers = [
        Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"outbid-chaos-lso-{level}",
                "isolation.level": level,
                "logger": logging.getLogger("librdkafka"),
            }
        )
        for level in ("read_committed", "read_uncommitted")
    ]
    try:
        found = []
        for topic in topics:
            metadata = readers[0].list_topics(topic, timeout=15).topics[topic]
            for partition in metadata.partitions:
                tp = TopicPartition(topic, partition)
                stable = readers[0].get_watermark_offsets(tp, timeout=15, cached=False)[1]
                high = readers[1].get_watermark_offsets(tp, timeout=15, cached=False)[1]
                if stable < high:
                    found.append(f"{topic}[{partition}]")
        return found
    finally:
        for reader in readers:
            reader.close()


def settle_transactions(
    bootstrap: str, topics: list[str], timeout_s: float = OPEN_TRANSACTIONS_TIMEOUT_S
) -> float:
    """Wait until no partition of `topics` has an open transaction; the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            if not open_partitions(bootstrap, topics):
                break
        except KafkaException:
            pass  # a leader moving: ask again
        time.sleep(1)
    return time.monotonic() - started if time.monotonic() - started > 1 else 0.0


def run(  # noqa: PLR0912, PLR0915 - one scenario, read top to bottom
    spec: ChaosSpec, settings: Settings, root: Path, say: Callable[[str], None] = log.info
) -> ChaosResult:
    rng = random.Random(spec.seed)  # noqa: S311 - which worker to kill, not security
    result = ChaosResult()
    cluster = KafkaCluster(
        root / "kafka", port=processes.free_port_run(2 * spec.brokers), size=spec.brokers
    )
    redis_server = RedisServer(root / "redis", port=processes.free_port())
    specs: list[worker_procs.WorkerSpec] = []
    pids: dict[int, int] = {}
    try:
        cluster.start()
        redis_server.start()
        bootstrap = cluster.bootstrap
        settings = settings.model_copy(
            update={"kafka_bootstrap_servers": bootstrap, "redis_url": SecretStr(redis_server.url)}
        )
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "OUTBID_TOPIC_PREFIX": settings.topic_prefix,
            "REDIS_URL": redis_server.url,
        }
        topics = load_topics(settings.topics_file)
        client = admin.admin_client(bootstrap)
        admin.apply(
            admin.plan(topics, client, bootstrap, settings.topic_prefix),
            topics,
            client,
            settings.topic_prefix,
        )
        say(
            f"{spec.brokers} Kafka nodes at {bootstrap}; topics with replication factor {min(3, spec.brokers)}"
        )
        for index in range(1, spec.workers + 1):
            ws = worker_procs.WorkerSpec(index, processes.free_port(), root / f"worker-{index}")
            specs.append(ws)
            pids[index] = worker_procs.start(ws, env)
        worker_procs.wait_ready(specs, [pids[s.index] for s in specs])
        say(f"{spec.workers} workers ready")

        load_spec = loadgen.LoadSpec(
            commands=spec.commands,
            rate=spec.rate,
            auctions=spec.auctions,
            seed=spec.seed,
            run_id=f"C{spec.seed}",
        )
        outcome: dict[str, object] = {}

        def produce_load() -> None:
            try:
                outcome["report"] = loadgen.run(load_spec, bootstrap, settings.topic(COMMANDS))
            except Exception as exc:
                outcome["error"] = exc

        sender = threading.Thread(target=produce_load, name="loadgen", daemon=True)
        started = time.monotonic()
        sender.start()
        next_kill = started + spec.kill_every_s
        broker_down: tuple[int, float] | None = None
        broker_done = not spec.broker_kill or spec.brokers < 3
        down: dict[int, float] = {}  # worker index -> restart time

        def supervise(now: float) -> None:
            """What a process supervisor (compose's `restart: unless-stopped`) does: restart
            the workers that are down, including those that stopped by themselves (a worker
            stops on a fenced producer or a failed commit, by design: docs/guarantees.md)."""
            for index, pid in list(pids.items()):
                if not processes.alive(pid):
                    del pids[index]
                    down[index] = now + spec.restart_after_s
                    result.worker_exits += 1
                    say(f"worker {index} stopped by itself at {now - started:.0f}s; restarting it")
            for index, at in list(down.items()):
                if now >= at:
                    pids[index] = worker_procs.start(specs[index - 1], env)
                    del down[index]

        while sender.is_alive():
            now = time.monotonic()
            supervise(now)
            if now >= next_kill:
                victim = rng.choice([i for i in pids if i not in down])
                processes.kill(pids.pop(victim))
                result.worker_kills += 1
                down[victim] = now + spec.restart_after_s
                next_kill = now + spec.kill_every_s
                say(f"kill -9 worker {victim} at {now - started:.0f}s")
            if not broker_done and broker_down is None and now - started > spec.kill_every_s * 1.5:
                node = spec.brokers  # never the first bootstrap address
                cluster.kill_node(node)
                result.broker_kills += 1
                broker_down = (node, now + 10)
                say(f"kill -9 Kafka node {node} at {now - started:.0f}s")
            if broker_down and now >= broker_down[1]:
                cluster.start_node(broker_down[0])
                say(f"Kafka node {broker_down[0]} restarted at {now - started:.0f}s")
                broker_down, broker_done = None, True
            time.sleep(0.2)
        if "error" in outcome:
            raise outcome["error"]  # type: ignore[misc]
        report = outcome["report"]
        assert isinstance(report, loadgen.LoadReport)
        result.sent, result.load_seconds = dict(report.sent), report.seconds
        if broker_down:
            cluster.start_node(broker_down[0])
        for index in list(down):
            pids[index] = worker_procs.start(specs[index - 1], env)
        down.clear()
        say(
            f"load done: {report.total} commands in {report.seconds:.0f}s; waiting for the workers to catch up"
        )
        caught = time.monotonic()
        deadline = caught + spec.catch_up_timeout_s
        quiet = failures = 0
        while time.monotonic() < deadline:
            supervise(time.monotonic())
            try:
                remaining = lag(
                    bootstrap,
                    settings.group_id,
                    [settings.topic(COMMANDS)],
                    topics.partitions(COMMANDS),
                )
            except KafkaException as exc:
                # A leader moving after the broker kill (NOT_LEADER_FOR_PARTITION, which
                # librdkafka does not flag retriable here): ask again, a bounded number of times.
                failures += 1
                if failures >= MAX_LAG_FAILURES:
                    raise KafkaUnavailableError(f"cannot read the group's lag: {exc}") from exc
                say(f"  lag unknown for now ({exc.args[0].str()}); asking again")
                time.sleep(1)
                continue
            failures = 0
            quiet = quiet + 1 if remaining == 0 else 0
            if remaining:
                say(f"  {remaining} record(s) still to process")
            if quiet >= 3:
                break
            time.sleep(1)
        result.catch_up_seconds = time.monotonic() - caught
        # The audit reads committed records only, up to each partition's last stable offset: a
        # transaction still open there (a killed worker's, until the broker aborts it after the
        # transaction timeout) would hide every later record. Audit once none is open.
        open_for = settle_transactions(
            bootstrap, [t.name for t in topics.resolve(spec.brokers, settings.topic_prefix)]
        )
        result.open_transactions_seconds = round(open_for, 1)
        if open_for:
            say(f"  waited {open_for:.0f}s for open transactions to end")
        result.rebalances = sum(
            s.log_file.read_text(errors="replace").count("] assigned partition(s)")
            for s in specs
            if s.log_file.exists()
        )
        say(f"caught up in {result.catch_up_seconds:.0f}s; auditing")
        result.findings = verify(settings)
        return result
    finally:
        for pid in pids.values():
            processes.stop(pid)
        cluster.stop()
        redis_server.stop()
