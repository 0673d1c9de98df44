"""The Apache Kafka command-line tools, run from the same Maven jars as the broker."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from app.devstack import jars
from app.devstack.system import require_java
from app.errors import DevStackError
from app.settings import REPO_ROOT

LOG4J_TOOLS = REPO_ROOT / "infra" / "kafka" / "log4j2-tools.properties"

# Script name in Kafka's bin/ -> main class (Kafka 4.1, read from bin/*.sh upstream).
TOOLS = {
    "kafka-console-producer": "org.apache.kafka.tools.ConsoleProducer",
    "kafka-console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "kafka-topics": "org.apache.kafka.tools.TopicCommand",
    "kafka-configs": "kafka.admin.ConfigCommand",
    "kafka-consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "kafka-transactions": "org.apache.kafka.tools.TransactionsCommand",
    "kafka-get-offsets": "org.apache.kafka.tools.GetOffsetShell",
    "kafka-reassign-partitions": "org.apache.kafka.tools.reassign.ReassignPartitionsCommand",
    "kafka-metadata-quorum": "org.apache.kafka.tools.MetadataQuorumCommand",
    "kafka-broker-api-versions": "kafka.admin.BrokerApiVersionsCommand",
    "kafka-producer-perf-test": "org.apache.kafka.tools.ProducerPerformance",
    "kafka-consumer-perf-test": "org.apache.kafka.tools.ConsumerPerformance",
    "kafka-dump-log": "kafka.tools.DumpLogSegments",  # still in the core jar in 4.1
    "kafka-delete-records": "org.apache.kafka.tools.DeleteRecordsCommand",
    "kafka-storage": "kafka.tools.StorageTool",
    "kafka-acls": "org.apache.kafka.tools.AclCommand",
}
# The option each tool reads client properties from (security settings); the others:
# --command-config. Tools that open no client connection are absent.
CONFIG_OPTIONS = {
    "kafka-console-producer": "--producer.config",
    "kafka-console-consumer": "--consumer.config",
    "kafka-producer-perf-test": "--producer.config",
    "kafka-consumer-perf-test": "--consumer.config",
    "kafka-storage": None,
    "kafka-dump-log": None,
}


def tool_command(tool: str, args: Sequence[str]) -> list[str]:
    """The java command line for `tool` (a name from Kafka's bin/, with or without .sh)."""
    name = tool.removesuffix(".sh")
    if name not in TOOLS:
        known = ", ".join(sorted(TOOLS))
        raise DevStackError(f"unknown Kafka tool {tool!r}; known tools: {known}")
    java = require_java()
    return [
        java,
        "-Xmx256m",
        f"-Dlog4j2.configurationFile={LOG4J_TOOLS}",
        "-cp",
        jars.classpath(),
        TOOLS[name],
        *args,
    ]


def config_option(tool: str) -> str | None:
    return CONFIG_OPTIONS.get(tool.removesuffix(".sh"), "--command-config")


def with_command_config(tool: str, args: Sequence[str], config: Path) -> list[str]:
    """`args` with the tool's client-properties option naming `config` in front (before any
    sub-command, which kafka-transactions needs), unless the caller passed that option."""
    option = config_option(tool)
    if option is None or any(a == option or a.startswith(f"{option}=") for a in args):
        return list(args)
    return [option, str(config), *args]


def run_tool(tool: str, args: Sequence[str], config: Path) -> int:
    """Run the tool with a generated client-properties file (a secured cluster); its exit code.
    A child, not exec: the file holds secrets and is deleted when the tool ends."""
    cmd = tool_command(tool, with_command_config(tool, args, config))
    try:
        return subprocess.run(cmd, check=False).returncode
    except KeyboardInterrupt:
        return 130


def exec_tool(tool: str, args: Sequence[str]) -> None:
    """Replace this process with the tool: stdin, stdout, signals and exit code pass straight through."""
    cmd = tool_command(tool, args)
    os.execv(cmd[0], cmd)  # noqa: S606 - replacing ourselves with the tool is the point
