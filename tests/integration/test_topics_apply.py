"""`outbid topics apply|check` against a real broker."""

from __future__ import annotations

import re

import pytest

from tests.conftest import run_outbid

pytestmark = pytest.mark.integration


def test_apply_creates_every_topic_and_a_second_run_changes_nothing(
    outbid_env: dict[str, str], prefix: str
) -> None:
    first = run_outbid("topics", "apply", env=outbid_env)
    assert first.returncode == 0, first.stderr
    assert [line.split()[0] for line in first.stdout.splitlines()[:-1]] == ["create"] * 7
    second = run_outbid("topics", "apply", env=outbid_env)
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("no change"), second.stdout


def test_dry_run_changes_nothing(outbid_env: dict[str, str]) -> None:
    dry = run_outbid("topics", "apply", "--dry-run", env=outbid_env)
    assert dry.returncode == 0, dry.stderr
    assert "dry run: 7 change(s) not applied" in dry.stdout
    check = run_outbid("topics", "check", env=outbid_env)
    assert check.returncode == 1
    assert sum(line.startswith("create ") for line in check.stdout.splitlines()) == 7


def test_check_reports_drift_made_with_kafka_configs_and_apply_repairs_it(
    outbid_env: dict[str, str], prefix: str, servers: object
) -> None:
    assert run_outbid("topics", "apply", env=outbid_env).returncode == 0
    assert run_outbid("topics", "check", env=outbid_env).returncode == 0
    bootstrap = outbid_env["KAFKA_BOOTSTRAP_SERVERS"]
    alter = run_outbid(
        "kafka",
        "kafka-configs",
        "--bootstrap-server",
        bootstrap,
        "--alter",
        "--entity-type",
        "topics",
        "--entity-name",
        f"{prefix}bid-commands",
        "--add-config",
        "retention.ms=1000",
        env=outbid_env,
    )
    assert alter.returncode == 0, alter.stderr
    drift = run_outbid("topics", "check", env=outbid_env)
    assert drift.returncode == 1
    assert re.search(
        rf"{re.escape(prefix)}bid-commands\s+retention.ms: 1000 -> 604800000", drift.stdout
    ), drift.stdout
    repaired = run_outbid("topics", "apply", env=outbid_env)
    assert repaired.returncode == 0, repaired.stderr
    assert "applied 1 change(s)" in repaired.stdout
    assert run_outbid("topics", "check", env=outbid_env).returncode == 0


def test_compacted_topics_are_compacted_as_kafka_configs_describes_them(
    outbid_env: dict[str, str], prefix: str
) -> None:
    assert run_outbid("topics", "apply", env=outbid_env).returncode == 0
    for topic, policy in [
        ("auction-snapshots", "compact"),
        ("outbid-auctions-changelog", "compact"),
        ("outbid-highest_bids-changelog", "compact"),
        ("auction-events", "delete"),
    ]:
        described = run_outbid(
            "kafka",
            "kafka-configs",
            "--bootstrap-server",
            outbid_env["KAFKA_BOOTSTRAP_SERVERS"],
            "--describe",
            "--entity-type",
            "topics",
            "--entity-name",
            f"{prefix}{topic}",
            env=outbid_env,
        )
        assert described.returncode == 0, described.stderr
        assert f"cleanup.policy={policy}" in described.stdout, described.stdout
    events = run_outbid(
        "kafka",
        "kafka-configs",
        "--bootstrap-server",
        outbid_env["KAFKA_BOOTSTRAP_SERVERS"],
        "--describe",
        "--entity-type",
        "topics",
        "--entity-name",
        f"{prefix}auction-events",
        env=outbid_env,
    )
    assert "retention.ms=-1" in events.stdout


def test_apply_refuses_to_shrink_or_regrow_co_partitioned_topics(
    outbid_env: dict[str, str], prefix: str, tmp_path: object
) -> None:
    from pathlib import Path  # noqa: PLC0415

    assert run_outbid("topics", "apply", env=outbid_env).returncode == 0
    text = Path("topics.yaml").read_text()
    fewer = Path(str(tmp_path)) / "fewer.yaml"
    fewer.write_text(text.replace("  partitions: 8", "  partitions: 4"))
    shrink = run_outbid("topics", "apply", env={**outbid_env, "OUTBID_TOPICS_FILE": str(fewer)})
    assert shrink.returncode == 2
    assert "Kafka cannot remove partitions" in shrink.stderr
    assert "Traceback" not in shrink.stderr
    more = Path(str(tmp_path)) / "more.yaml"
    more.write_text(text.replace("  partitions: 8", "  partitions: 12"))
    grow = run_outbid("topics", "apply", env={**outbid_env, "OUTBID_TOPICS_FILE": str(more)})
    assert grow.returncode == 2
    assert "co-partitioned" in grow.stderr
    assert run_outbid("topics", "check", env=outbid_env).returncode == 0  # nothing was half-applied
