"""A real Apache Kafka 4 cluster in KRaft combined mode, one JVM per node, on loopback.

Node i (0-based) listens on port+2i (clients) and port+2i+1 (controller quorum); all nodes
are voters of one static quorum. Data and logs live under data_root/node-<id>/.
With `security` (app/devstack/security.py) the client port speaks SASL_SSL only.
"""

from __future__ import annotations

import base64
import logging
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException

from app.devstack import jars, processes
from app.devstack.security import SecureCluster
from app.devstack.system import require_java
from app.errors import DevStackError
from app.settings import REPO_ROOT
from app.topics.admin import admin_client

log = logging.getLogger(__name__)

BROKER_MAIN = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
LOG4J_BROKER = REPO_ROOT / "infra" / "kafka" / "log4j2-broker.properties"
READY_TIMEOUT_S = 60.0
# The JVM flags of upstream's kafka-server-start.sh, with a smaller, bounded heap.
JVM_FLAGS = [
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
]


def new_cluster_id() -> str:
    """16 random bytes, url-safe base64 without padding, as `kafka-storage random-uuid` makes them.

    Like Kafka's Uuid.randomUuid, never one starting with '-', which a command line reads as an option.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


@dataclass(frozen=True, slots=True)
class KafkaNode:
    node_id: int
    port: int
    controller_port: int
    data_dir: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "logs" / "process.log"


@dataclass(slots=True)
class KafkaCluster:
    data_root: Path
    port: int = 9092
    size: int = 1
    heap: str = "512m"
    pids: dict[int, int] = field(default_factory=dict)  # node_id -> pid
    security: SecureCluster | None = None  # None: PLAINTEXT, no authentication

    @property
    def nodes(self) -> list[KafkaNode]:
        return [
            KafkaNode(
                i + 1, self.port + 2 * i, self.port + 2 * i + 1, self.data_root / f"node-{i + 1}"
            )
            for i in range(self.size)
        ]

    @property
    def bootstrap(self) -> str:
        return ",".join(n.address for n in self.nodes)

    @property
    def client_config(self) -> dict[str, Any]:
        """An admin client's librdkafka settings (the super user `admin` when secured)."""
        if self.security is None:
            return {"bootstrap.servers": self.bootstrap}
        return self.security.client_config(self.bootstrap, "admin")

    def node(self, node_id: int) -> KafkaNode:
        return self.nodes[node_id - 1]

    # --- configuration -------------------------------------------------------------
    def server_properties(self, node: KafkaNode) -> str:
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        rf = min(3, self.size)
        min_isr = 2 if rf >= 3 else 1
        lines: dict[str, object] = {
            "process.roles": "broker,controller",
            "node.id": node.node_id,
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": node.data_dir / "data",
            # One-node defaults of 3 replicas / min ISR 2 would make the cluster unusable.
            "offsets.topic.replication.factor": rf,
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": min_isr,
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": min_isr,
            "default.replication.factor": rf,
            "min.insync.replicas": min_isr,
            "num.partitions": 1,
            "auto.create.topics.enable": "false",  # topics come from topics.yaml only
            "group.initial.rebalance.delay.ms": 0,  # default 3 s delays every test's first join
            "log.cleaner.dedupe.buffer.size": 33554432,  # the 128 MiB default needs a 1 GiB heap
            "log.segment.bytes": 104857600,
        }
        if self.security is not None:
            lines.update(self.security.server_properties(node.port, node.controller_port))
        return "".join(f"{k}={v}\n" for k, v in lines.items())

    def _prepare(self, node: KafkaNode, classpath: str, java: str) -> Path:
        node.data_dir.mkdir(parents=True, exist_ok=True)
        props = node.data_dir / "server.properties"
        props.write_text(self.server_properties(node))
        if (node.data_dir / "data" / "meta.properties").exists():
            return props
        cluster_file = self.data_root / "cluster.id"
        if not cluster_file.exists():
            cluster_file.write_text(new_cluster_id())
        cluster_id = cluster_file.read_text().strip()
        result = subprocess.run(
            [
                java,
                "-cp",
                classpath,
                f"-Dlog4j2.configurationFile={LOG4J_BROKER}",
                f"-Dkafka.logs.dir={node.data_dir / 'logs'}",
                STORAGE_TOOL,
                "format",
                f"--cluster-id={cluster_id}",
                "-c",
                str(props),
                *(self.security.scram_format_args() if self.security else []),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise DevStackError(
                f"formatting Kafka storage in {node.data_dir} failed: {result.stdout}{result.stderr}"
                f"\nIf this folder belongs to an older cluster, remove it (`outbid dev down --wipe`)."
            )
        return props

    # --- lifecycle -----------------------------------------------------------------
    def start(self, wait: bool = True) -> None:
        java = require_java()
        for node in self.nodes:
            for port, what in (
                (node.port, f"Kafka node {node.node_id}"),
                (node.controller_port, f"Kafka controller {node.node_id}"),
            ):
                processes.require_free(port, what, "--kafka-port")
        classpath = jars.classpath()
        for node in self.nodes:
            self.start_node(node.node_id, classpath=classpath, java=java)
        if wait:
            self.wait_ready()

    def start_node(
        self, node_id: int, classpath: str | None = None, java: str | None = None
    ) -> None:
        node = self.node(node_id)
        java = java or require_java()
        classpath = classpath or jars.classpath()
        props = self._prepare(node, classpath, java)
        cmd = [
            java,
            f"-Xmx{self.heap}",
            f"-Xms{self.heap}",
            *JVM_FLAGS,
            f"-Dlog4j2.configurationFile={LOG4J_BROKER}",
            f"-Dkafka.logs.dir={node.data_dir / 'logs'}",
            "-cp",
            classpath,
            BROKER_MAIN,
            str(props),
        ]
        self.pids[node_id] = processes.spawn(cmd, node.log_file).pid

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Block until every node is in the cluster metadata (a real metadata round trip)."""
        admin = admin_client(self.client_config)
        deadline = time.monotonic() + timeout_s
        seen = 0
        while time.monotonic() < deadline:
            for node_id, pid in self.pids.items():
                if not processes.alive(pid):
                    node = self.node(node_id)
                    raise DevStackError(
                        f"Kafka node {node_id} exited during start-up; last lines of "
                        f"{node.data_dir / 'logs' / 'server.log'}:\n"
                        f"{processes.tail(node.data_dir / 'logs' / 'server.log')}\n"
                        f"{processes.tail(node.log_file)}"
                    )
            try:
                seen = len(admin.list_topics(timeout=2).brokers)
            except KafkaException:
                seen = 0
            if seen >= self.size:
                return
            time.sleep(0.3)
        raise DevStackError(
            f"Kafka at {self.bootstrap} not ready after {timeout_s:.0f}s ({seen}/{self.size} brokers "
            f"registered); see {self.nodes[0].data_dir / 'logs' / 'server.log'}"
        )

    def stop_node(self, node_id: int) -> None:
        pid = self.pids.pop(node_id, None)
        if pid:
            processes.stop(pid)

    def kill_node(self, node_id: int) -> None:
        pid = self.pids.pop(node_id, None)
        if pid:
            processes.kill(pid)

    def stop(self) -> None:
        for node_id in list(self.pids):
            self.stop_node(node_id)
