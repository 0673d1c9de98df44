"""`outbid dlq replay` against a real broker: selected, exactly once, and resumable."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from tests.conftest import run_outbid
from tests.e2e.conftest import read_all

pytestmark = pytest.mark.integration


def _park(env: dict[str, str], prefix: str, records: list[tuple[bytes, str]]) -> None:
    """Dead letters as the workers write them: original bytes, reason in the headers."""
    producer = Producer({"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"]})
    for i, (value, reason) in enumerate(records):
        producer.produce(
            f"{prefix}bid-commands-dlq",
            key=b"A-1",
            value=value,
            headers=[
                ("outbid.reason", reason.encode()),
                ("outbid.source.topic", f"{prefix}bid-commands".encode()),
                ("outbid.source.partition", b"3"),
                ("outbid.source.offset", str(i).encode()),
            ],
        )
    assert producer.flush(30) == 0


def test_replay_re_drives_selected_dead_letters_once(
    outbid_env: dict[str, str], prefix: str
) -> None:
    assert run_outbid("topics", "apply", env=outbid_env).returncode == 0
    _park(
        outbid_env,
        prefix,
        [(b"one", "handler_error"), (b"two", "malformed_json"), (b"three", "handler_error")],
    )

    dry = run_outbid("dlq", "replay", "--reason", "handler_error", "--dry-run", env=outbid_env)
    assert dry.returncode == 0, dry.stderr
    assert "would replay 2 record(s)" in dry.stdout
    assert read_all(outbid_env["KAFKA_BOOTSTRAP_SERVERS"], f"{prefix}bid-commands") == []

    done = run_outbid("dlq", "replay", "--reason", "handler_error", env=outbid_env)
    assert done.returncode == 0, done.stderr
    assert "replayed 2 record(s)" in done.stdout
    assert "left 1 record(s) with other reasons: malformed_json 1" in done.stdout
    commands = read_all(outbid_env["KAFKA_BOOTSTRAP_SERVERS"], f"{prefix}bid-commands")
    assert sorted(value for _, value, _, _, _ in commands) == [b"one", b"three"]
    for key, _, headers, _, _ in commands:
        assert key == b"A-1"  # the original key, so the command lands on its auction's partition
        assert dict(headers)["outbid.replayed-from"].startswith(
            f"{prefix}bid-commands-dlq/0/".encode()
        )

    again = run_outbid("dlq", "replay", "--reason", "handler_error", env=outbid_env)
    assert "replayed 0 record(s)" in again.stdout  # the replay's position was committed with it
    everything = run_outbid("dlq", "replay", env=outbid_env)  # another selection, its own position
    assert "replayed 3 record(s)" in everything.stdout
    assert len(read_all(outbid_env["KAFKA_BOOTSTRAP_SERVERS"], f"{prefix}bid-commands")) == 5
