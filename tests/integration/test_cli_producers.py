"""The real Kafka console producer and kcat, round-tripped through a real broker."""

from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest
from confluent_kafka import Consumer

from tests.conftest import run_outbid

pytestmark = pytest.mark.integration


def _consume(
    bootstrap: str, topic: str, count: int, timeout_s: float = 30
) -> list[tuple[bytes, bytes, int]]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"g-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    got: list[tuple[bytes, bytes, int]] = []
    import time  # noqa: PLC0415

    deadline = time.monotonic() + timeout_s
    try:
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            got.append((msg.key(), msg.value(), msg.partition()))
    finally:
        consumer.close()
    return got


@pytest.fixture
def topics_applied(outbid_env: dict[str, str]) -> dict[str, str]:
    result = run_outbid("topics", "apply", env=outbid_env)
    assert result.returncode == 0, result.stderr
    return outbid_env


def test_console_producer_round_trip_keeps_keys_and_values(
    topics_applied: dict[str, str], prefix: str
) -> None:
    bootstrap = topics_applied["KAFKA_BOOTSTRAP_SERVERS"]
    lines = [f'A-{i}|{{"type":"PlaceBid","auction_id":"A-{i}","n":{i}}}' for i in range(20)]
    produced = run_outbid(
        "kafka",
        "kafka-console-producer",
        "--bootstrap-server",
        bootstrap,
        "--topic",
        f"{prefix}bid-commands",
        "--property",
        "parse.key=true",
        "--property",
        "key.separator=|",
        env=topics_applied,
        input="\n".join(lines) + "\n",
    )
    assert produced.returncode == 0, produced.stderr
    got = _consume(bootstrap, f"{prefix}bid-commands", 20)
    assert sorted((k.decode(), v.decode()) for k, v, _ in got) == sorted(
        tuple(line.split("|", 1)) for line in lines
    )


def test_kcat_with_murmur2_lands_keys_on_the_same_partition_as_the_java_producer(
    topics_applied: dict[str, str], prefix: str
) -> None:
    kcat = shutil.which("kcat")
    assert kcat, "kcat must be installed (apt-get install kcat); the Makefile does it"
    bootstrap = topics_applied["KAFKA_BOOTSTRAP_SERVERS"]
    topic = f"{prefix}bid-commands"
    keys = [f"A-{i}" for i in range(30)]
    java_lines = "".join(f"{k}|java\n" for k in keys)
    assert (
        run_outbid(
            "kafka",
            "kafka-console-producer",
            "--bootstrap-server",
            bootstrap,
            "--topic",
            topic,
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=|",
            env=topics_applied,
            input=java_lines,
        ).returncode
        == 0
    )
    # The documented kcat line: murmur2_random is the Java client's partitioner.
    kcat_lines = "".join(f"{k}|kcat\n" for k in keys)
    done = subprocess.run(
        [kcat, "-P", "-b", bootstrap, "-t", topic, "-K", "|", "-X", "partitioner=murmur2_random"],
        input=kcat_lines,
        text=True,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    got = _consume(bootstrap, topic, 60)
    assert len(got) == 60
    by_producer: dict[str, dict[bytes, int]] = {"java": {}, "kcat": {}}
    for key, value, partition in got:
        by_producer[value.decode()][key] = partition
    assert by_producer["java"] == by_producer["kcat"]
    assert len(set(by_producer["java"].values())) > 1  # the keys really spread over partitions
