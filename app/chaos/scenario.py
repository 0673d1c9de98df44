"""The chaos run itself: start the cluster and the workers, send the load while killing them
on the seed's schedule, wait for the catch-up, then audit."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import KafkaException
from pydantic import SecretStr

from app import loadgen
from app.audit.verify import verify
from app.chaos.probes import find_hanging, lag, settle_transactions
from app.chaos.result import ChaosResult, WorkerExit
from app.chaos.schedule import ChaosSpec, broker_kill, load_spec, worker_kills
from app.devstack import processes
from app.devstack import workers as worker_procs
from app.devstack.kafka import KafkaCluster
from app.devstack.redis import RedisServer
from app.errors import KafkaUnavailableError
from app.kafka_config import KafkaConfig
from app.settings import Settings
from app.topics import admin, load_topics
from app.topics.spec import COMMANDS

log = logging.getLogger(__name__)

MAX_LAG_FAILURES = 60  # consecutive failed lag reads before the run gives up


def _last_error(log_file: Path) -> str:
    lines = processes.tail(log_file, 60).splitlines()
    errors = [line for line in lines if "Error" in line or "error" in line]
    return (errors or lines or [""])[-1].strip()[:300]


class _Workers:
    """The run's worker processes, and what a process supervisor (compose's `restart:
    unless-stopped`) does with them: restart a worker that is down, whether the run killed it or
    it stopped by itself (a worker stops on a fenced producer or a refused transaction, by design:
    docs/guarantees.md). Only a worker that ended without being killed counts as an exit."""

    def __init__(
        self,
        specs: list[worker_procs.WorkerSpec],
        env: dict[str, str],
        restart_after_s: float,
        say: Callable[[str], None],
    ) -> None:
        self.specs = {s.index: s for s in specs}
        self.env, self.restart_after_s, self.say = env, restart_after_s, say
        self.pids: dict[int, int] = {}
        self.down: dict[int, float] = {}  # worker index -> when to restart it
        self.exits: list[WorkerExit] = []
        self.started = time.monotonic()  # the load's start: times are reported from there

    def start_all(self) -> None:
        for index, spec in self.specs.items():
            self.pids[index] = worker_procs.start(spec, self.env)
        worker_procs.wait_ready(list(self.specs.values()), list(self.pids.values()))

    def supervise(self, phase: str, restart: bool = True) -> None:
        now = time.monotonic()
        for index, pid in list(self.pids.items()):
            if not processes.alive(pid):
                del self.pids[index]
                self.down[index] = now + self.restart_after_s
                stopped = WorkerExit(
                    index,
                    round(now - self.started, 1),
                    phase,
                    _last_error(self.specs[index].log_file),
                )
                self.exits.append(stopped)
                self.say(
                    f"worker {index} stopped by itself at {stopped.at_s:.0f}s ({phase}): "
                    f"{stopped.last_error}"
                )
        if restart:
            for index, at in list(self.down.items()):
                if now >= at:
                    self.pids[index] = worker_procs.start(self.specs[index], self.env)
                    del self.down[index]

    def kill(self, index: int) -> bool:
        """kill -9 a running worker (False when it is down already); restarted later."""
        pid = self.pids.pop(index, None)
        if pid is None:
            return False
        processes.kill(pid)
        self.down[index] = time.monotonic() + self.restart_after_s
        return True

    def restart_down(self) -> None:
        for index in list(self.down):
            self.pids[index] = worker_procs.start(self.specs[index], self.env)
        self.down.clear()

    def stop_all(self) -> None:
        for pid in self.pids.values():
            processes.stop(pid)

    def rebalances(self) -> int:
        return sum(
            s.log_file.read_text(errors="replace").count("] assigned partition(s)")
            for s in self.specs.values()
            if s.log_file.exists()
        )


def run(
    spec: ChaosSpec, settings: Settings, root: Path, say: Callable[[str], None] = log.info
) -> ChaosResult:
    say(f"chaos seed {spec.seed} (--seed {spec.seed} repeats its kill schedule and its commands)")
    result = ChaosResult(spec=spec)
    cluster = KafkaCluster(
        root / "kafka", port=processes.free_port_run(2 * spec.brokers), size=spec.brokers
    )
    redis_server = RedisServer(root / "redis", port=processes.free_port())
    workers: _Workers | None = None
    try:
        cluster.start()
        redis_server.start()
        bootstrap, kafka = cluster.bootstrap, cluster.client_config
        settings = settings.model_copy(  # its own cluster: PLAINTEXT, whatever the environment says
            update={
                "kafka_bootstrap_servers": bootstrap,
                "kafka_security_protocol": "PLAINTEXT",
                "redis_url": SecretStr(redis_server.url),
            }
        )
        topics = load_topics(settings.topics_file)
        client = admin.admin_client(kafka)
        admin.reconcile(topics, client, kafka, settings.topic_prefix)
        say(
            f"{spec.brokers} Kafka nodes at {bootstrap}; topics with replication factor {min(3, spec.brokers)}"
        )
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "OUTBID_TOPIC_PREFIX": settings.topic_prefix,
            "REDIS_URL": redis_server.url,
        }
        specs = [
            worker_procs.WorkerSpec(i, processes.free_port(), root / f"worker-{i}")
            for i in range(1, spec.workers + 1)
        ]
        workers = _Workers(specs, env, spec.restart_after_s, say)
        workers.start_all()
        say(f"{spec.workers} workers ready")

        report = _load_under_faults(spec, cluster, workers, kafka, settings, result, say)
        result.sent, result.load_seconds = dict(report.sent), report.seconds
        say(
            f"load done: {report.total} commands in {report.seconds:.0f}s; waiting for the workers to catch up"
        )
        commands = [settings.topic(COMMANDS)]
        partitions = topics.partitions(COMMANDS)
        result.catch_up_seconds, result.backlog = _catch_up(
            spec, workers, kafka, settings, partitions, say
        )
        # The audit reads committed records only, up to each partition's last stable offset: a
        # transaction still open there (a killed worker's, until the broker aborts it after the
        # transaction timeout) would hide every later record. Audit once none is open.
        open_for = settle_transactions(
            kafka, [t.name for t in topics.resolve(spec.brokers, settings.topic_prefix)]
        )
        result.open_transactions_seconds = round(open_for, 1)
        if open_for:
            say(f"  waited {open_for:.0f}s for open transactions to end")
        result.lag = _retrying(lambda: lag(kafka, settings.group_id, commands, partitions))
        result.rebalances = workers.rebalances()
        say(f"caught up in {result.catch_up_seconds:.0f}s (lag {result.lag}); auditing")
        result.findings = verify(settings)
        say("asking every broker for hanging transactions (kafka-transactions find-hanging)")
        result.hanging, result.hanging_errors = find_hanging(
            bootstrap, [n.node_id for n in cluster.nodes]
        )
        workers.supervise("audit", restart=False)
        result.exits = workers.exits
        for line in result.summary():
            say(line)
        return result
    finally:
        if workers is not None:
            workers.stop_all()
        cluster.stop()
        redis_server.stop()


def _load_under_faults(
    spec: ChaosSpec,
    cluster: KafkaCluster,
    workers: _Workers,
    kafka: KafkaConfig,
    settings: Settings,
    result: ChaosResult,
    say: Callable[[str], None],
) -> loadgen.LoadReport:
    """Send the load while killing workers and one broker on the seed's schedule."""
    kills = worker_kills(spec)
    broker = broker_kill(spec)
    planned = ", ".join(
        f"{k.at_s:.1f}s w{k.target}" for k in itertools.islice(worker_kills(spec), 5)
    )
    say(
        f"schedule: worker kills {planned}, ...; "
        + (
            f"Kafka node {broker.target} killed at {broker.at_s:.1f}s for {spec.broker_down_s:.0f}s"
            if broker
            else "no broker kill"
        )
    )
    outcome: dict[str, object] = {}

    def produce_load() -> None:
        try:
            outcome["report"] = loadgen.run(load_spec(spec), kafka, settings.topic(COMMANDS))
        except Exception as exc:
            outcome["error"] = exc

    sender = threading.Thread(target=produce_load, name="loadgen", daemon=True)
    next_kill = next(kills)
    broker_up_at: float | None = None  # when the killed broker comes back
    workers.started = started = time.monotonic()
    sender.start()
    while sender.is_alive():
        workers.supervise("load")
        elapsed = time.monotonic() - started
        if elapsed >= next_kill.at_s:
            if workers.kill(next_kill.target):
                result.kills.append(next_kill)
                say(f"kill -9 worker {next_kill.target} at {elapsed:.0f}s")
            else:
                result.kills_skipped.append(next_kill)
                say(f"worker {next_kill.target} is down at {elapsed:.0f}s: its kill is skipped")
            next_kill = next(kills)
        if broker and result.broker is None and elapsed >= broker.at_s:
            cluster.kill_node(broker.target)
            result.broker, broker_up_at = broker, elapsed + spec.broker_down_s
            say(f"kill -9 Kafka node {broker.target} at {elapsed:.0f}s")
        if broker and broker_up_at is not None and elapsed >= broker_up_at:
            cluster.start_node(broker.target)
            broker_up_at = None
            say(f"Kafka node {broker.target} restarted at {elapsed:.0f}s")
        time.sleep(0.2)
    if broker and broker_up_at is not None:
        cluster.start_node(broker.target)
    workers.restart_down()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    report = outcome["report"]
    assert isinstance(report, loadgen.LoadReport)
    return report


def _catch_up(
    spec: ChaosSpec,
    workers: _Workers,
    kafka: KafkaConfig,
    settings: Settings,
    partitions: int,
    say: Callable[[str], None],
) -> tuple[float, int | None]:
    """Seconds until the group had no lag (seen three times in a row), or the timeout; and the
    lag first seen (what was left to process when the load stopped)."""
    began = time.monotonic()
    deadline = began + spec.catch_up_timeout_s
    zero_since: float | None = None
    backlog: int | None = None
    quiet = failures = 0
    while time.monotonic() < deadline:
        workers.supervise("catch-up")
        asked = time.monotonic()
        try:
            remaining = lag(kafka, settings.group_id, [settings.topic(COMMANDS)], partitions)
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
        backlog = remaining if backlog is None else backlog
        if remaining:
            quiet, zero_since = 0, None
            say(f"  {remaining} record(s) still to process")
        else:
            quiet += 1
            zero_since = zero_since or asked
            if quiet >= 3:
                return zero_since - began, backlog
        time.sleep(1)
    return time.monotonic() - began, backlog


def _retrying(read: Callable[[], int], attempts: int = 10) -> int:
    """`read()`, asked again while Kafka answers with an error (a leader moving)."""
    for _ in range(attempts - 1):
        try:
            return read()
        except KafkaException:
            time.sleep(1)
    return read()
