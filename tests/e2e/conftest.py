"""Real worker processes (the `faust -A app worker` command line) against the test servers."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from app.devstack import processes
from app.devstack import workers as worker_procs
from app.domain import Command, encode_command
from tests.conftest import Servers, run_outbid


@dataclass
class Pipeline:
    env: dict[str, str]
    prefix: str
    root: Path
    specs: list[worker_procs.WorkerSpec] = field(default_factory=list)
    pids: dict[int, int] = field(default_factory=dict)  # index -> pid
    # Helper processes (load generators): reaped at teardown even when the test fails midway,
    # so a failed test leaves no running child for a later test's garbage collection to find.
    helpers: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return self.env["KAFKA_BOOTSTRAP_SERVERS"]

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def start(self, count: int) -> None:
        for _ in range(count):
            index = len(self.specs) + 1
            spec = worker_procs.WorkerSpec(
                index, processes.free_port(), self.root / f"worker-{index}"
            )
            self.specs.append(spec)
            self.pids[index] = worker_procs.start(spec, self.env)
        self.wait_ready()

    def wait_ready(self) -> None:
        live = [s for s in self.specs if s.index in self.pids]
        worker_procs.wait_ready(live, [self.pids[s.index] for s in live])

    def stop_worker(self, index: int) -> None:
        processes.stop(self.pids.pop(index))

    def kill_worker(self, index: int) -> None:
        processes.kill(self.pids.pop(index))

    def restart_worker(self, index: int) -> None:
        spec = self.specs[index - 1]
        self.pids[index] = worker_procs.start(spec, self.env)
        self.wait_ready()

    def spawn(self, args: list[str]) -> subprocess.Popen[str]:
        """A helper process with the pipeline's environment and captured output."""
        child = subprocess.Popen(
            args, env=self.env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.helpers.append(child)
        return child

    def urls(self) -> list[str]:
        return [s.url for s in self.specs if s.index in self.pids]

    def stop(self) -> None:
        for child in self.helpers:
            if child.poll() is None:
                child.kill()
            child.communicate()  # closes its pipes
        for index in list(self.pids):
            self.stop_worker(index)


@pytest.fixture
def pipeline(
    servers: Servers, outbid_env: dict[str, str], prefix: str, tmp_path: Path
) -> Iterator[Pipeline]:
    applied = run_outbid("topics", "apply", env=outbid_env)
    assert applied.returncode == 0, applied.stderr
    line = Pipeline(outbid_env, prefix, tmp_path / "workers")
    try:
        yield line
    finally:
        line.stop()
        for spec in line.specs:  # keep worker logs next to the test's other artifacts
            if spec.log_file.exists():
                print(f"--- {spec.log_file} (tail)\n{processes.tail(spec.log_file, 15)}")


def produce_commands(line: Pipeline, commands: Iterable[Command]) -> None:
    """Commands onto bid-commands with the real `outbid produce`, as a user would."""
    lines = "".join(encode_command(c).decode() + "\n" for c in commands)
    done = run_outbid("produce", "-", env=line.env, input=lines)
    assert done.returncode == 0, done.stderr


def read_all(
    bootstrap: str, topic: str, *, committed_only: bool = True
) -> list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]], int, int]]:
    """Every record of `topic` up to its current end offsets (read_committed by default)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed" if committed_only else "read_uncommitted",
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = [TopicPartition(topic, p) for p in metadata.topics[topic].partitions]
        ends = {}
        for tp in partitions:
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            if high > low:
                ends[tp.partition] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        out = []
        done: set[int] = set()
        import time  # noqa: PLC0415

        deadline = time.monotonic() + 60
        while len(done) < len(ends) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                for (
                    p,
                    end,
                ) in ends.items():  # transaction markers take offsets but are never delivered
                    position = consumer.position([TopicPartition(topic, p)])[0].offset
                    if position >= end:
                        done.add(p)
                continue
            if msg.error():
                continue
            out.append(
                (msg.key(), msg.value(), list(msg.headers() or []), msg.partition(), msg.offset())
            )
            if msg.offset() >= ends[msg.partition()] - 1:
                done.add(msg.partition())
        return out
    finally:
        consumer.close()
