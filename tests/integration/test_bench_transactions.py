"""A tiny `outbid bench transactions` against the session's real Kafka.

Checks that every variant was measured and that the cluster's verification setting is back to
what it was afterwards; never how fast anything was.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource

from bench.verification import VERIFICATION, Cluster
from tests.conftest import Servers, run_outbid

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def dynamic_values(bootstrap: str) -> dict[int, str | None]:
    """Each broker's dynamic value of the verification setting (None: not set)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    values: dict[int, str | None] = {}
    for broker in admin.list_topics(timeout=30).brokers:
        resource = ConfigResource("broker", str(broker))
        entry = admin.describe_configs([resource])[resource].result(30).get(VERIFICATION)
        dynamic = (
            entry is not None and ConfigSource(entry.source) is ConfigSource.DYNAMIC_BROKER_CONFIG
        )
        values[broker] = str(entry.value) if entry is not None and dynamic else None
    return values


@pytest.fixture
def verification_set_by_an_operator(servers: Servers) -> Iterator[None]:
    """A dynamic value set before the bench (the broker's default anyway): it must survive."""
    brokers = Cluster(AdminClient({"bootstrap.servers": servers.kafka}))
    brokers.set("true")
    try:
        yield
    finally:
        brokers.set(None)


@pytest.mark.usefixtures("verification_set_by_an_operator")
def test_tiny_transactions_bench_measures_every_variant_and_restores_the_cluster(
    servers: Servers, outbid_env: dict[str, str], tmp_path: Path
) -> None:
    before = dynamic_values(servers.kafka)
    assert set(before.values()) == {"true"}
    out = tmp_path / "transactions.json"
    done = run_outbid(
        "bench", "transactions", "--transactions", "10", "--repeats", "1", "--records", "1",
        "--pause-ms", "0", "--verification", "on,off", "--json", str(out),
        env=outbid_env,  # KAFKA_BOOTSTRAP_SERVERS and REDIS_URL set: it starts no servers
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    report = orjson.loads(out.read_bytes())
    assert len(report["source"]["commit"]) == 40
    assert report["config"]["private_broker"] is False
    per_topic = report["config"]["partitions_per_topic"]
    assert sorted(report["medians"]) == [
        "events+changelogs/off",
        "events+changelogs/on",
        "events/off",
        "events/on",
    ]
    assert {(r["shape"], r["verification"], r["partitions"]) for r in report["runs"]} == {
        ("events", "on", per_topic),
        ("events", "off", per_topic),
        ("events+changelogs", "on", 4 * per_topic),
        ("events+changelogs", "off", 4 * per_topic),
    }
    for run in report["runs"]:
        assert run["transactions"] == 10
        assert set(run["broker_setting"]) == {"true" if run["verification"] == "on" else "false"}
        assert all(run["ms"][stage]["p50"] > 0 for stage in ("flush", "end_txn", "total"))
    assert set(report["flush_ms_per_partition"]) == {"on", "off"}
    assert dynamic_values(servers.kafka) == before  # put back, whatever it was


def test_servers_the_bench_did_not_start_keep_their_setting_unless_asked(
    servers: Servers, outbid_env: dict[str, str], tmp_path: Path
) -> None:
    before = dynamic_values(servers.kafka)
    out = tmp_path / "transactions.json"
    done = run_outbid(
        "bench", "transactions", "--transactions", "5", "--repeats", "1", "--records", "1",
        "--pause-ms", "0", "--json", str(out),
        env=outbid_env,  # given servers, --verification not given
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "left as it is" in done.stdout + done.stderr
    report = orjson.loads(out.read_bytes())
    assert report["config"]["verification"] == ["on"]
    assert {run["verification"] for run in report["runs"]} == {"on"}
    assert dynamic_values(servers.kafka) == before


def test_an_unknown_verification_value_is_refused_before_anything_runs(
    outbid_env: dict[str, str],
) -> None:
    done = run_outbid("bench", "transactions", "--verification", "maybe", env=outbid_env)
    assert done.returncode == 2
    assert "--verification" in done.stderr
    assert "Traceback" not in done.stderr
