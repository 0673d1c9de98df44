"""`outbid verify` on histories written straight to a real broker: a clean one, corrupted ones,
and none at all."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import Message, Producer

from app import headers
from app.domain import (
    AuctionState,
    HighestBid,
    apply,
    decide,
    encode_command,
    encode_event,
    encode_state,
    encode_view,
    evolve,
)
from app.domain.events import Event
from app.readmodel import APPLY_IF_NEWER, apply_call, auction_key
from app.sample import sample_commands
from app.settings import Settings
from tests.conftest import Servers, run_outbid

pytestmark = pytest.mark.integration


def write_history(
    env: dict[str, str], prefix: str, *, corrupt: str | None = None
) -> dict[str, HighestBid]:
    """What a correct pipeline would have written for a sample stream, optionally corrupted."""
    now = datetime.now(UTC)
    states: dict[str, AuctionState] = {}
    views: dict[str, HighestBid] = {}
    events: list[Event] = []
    commands = list(sample_commands(auctions=12, bids_per_auction=5, seed=4))
    for command in commands:
        state = states.get(command.auction_id) or AuctionState.empty(command.auction_id)
        for event in decide(state, command, now):
            state = evolve(state, event)
            views[event.auction_id] = apply(views.get(event.auction_id), event)
            events.append(event)
        states[command.auction_id] = state
    if corrupt == "gap":
        events = [e for e in events if not (e.auction_id == "A-3" and e.seq == 3)]
    if corrupt == "duplicate":
        events.append(next(e for e in events if e.auction_id == "A-5" and e.seq == 2))
    if corrupt == "projection":
        views["A-7"] = replace(views["A-7"], highest_bid=(views["A-7"].highest_bid or 0) + 1)
    producer = Producer(
        {"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"], "partitioner": "murmur2_random"}
    )
    for command in commands:
        producer.produce(
            f"{prefix}bid-commands", key=command.auction_id.encode(), value=encode_command(command)
        )
    for event in events:
        producer.produce(
            f"{prefix}auction-events", key=event.auction_id.encode(), value=encode_event(event)
        )
    for auction_id, view in views.items():
        producer.produce(
            f"{prefix}outbid-highest_bids-changelog",
            key=auction_id.encode(),
            value=encode_view(view),
        )
    for auction_id, state in states.items():
        producer.produce(
            f"{prefix}outbid-auctions-changelog", key=auction_id.encode(), value=encode_state(state)
        )
    assert producer.flush(30) == 0
    return views


def write_reroutes(env: dict[str, str], prefix: str, how: str) -> None:
    """A command sent without a key, and re-routed twice (`how`: "source twice" or "copy again").

    The command is one the history already decided (a client retry), so apart from the second
    re-route the history stays correct: the copies are absorbed as duplicates.
    """
    command = next(iter(sample_commands(auctions=12, bids_per_auction=5, seed=4)))
    commands = f"{prefix}bid-commands"
    producer = Producer(
        {"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"], "partitioner": "murmur2_random"}
    )

    def send(key: bytes | None, rerouted_from: str | None = None) -> str:
        sent: list[Message] = []
        producer.produce(
            commands,
            key=key,
            value=encode_command(command),
            partition=0 if key is None else -1,  # -1: the partitioner (murmur2, as a worker's)
            headers=[(headers.REROUTED_FROM, rerouted_from.encode())] if rerouted_from else None,
            on_delivery=lambda err, msg: sent.append(msg) if err is None else None,
        )
        assert producer.flush(30) == 0
        return f"{commands}/{sent[0].partition()}/{sent[0].offset()}"

    key = command.auction_id.encode()
    unkeyed = send(None)
    if how == "source twice":
        send(key, unkeyed)
        send(key, unkeyed)
    else:
        send(key, send(None, unkeyed))  # the copy itself went out without a key


@pytest.fixture
def applied(outbid_env: dict[str, str]) -> dict[str, str]:
    assert run_outbid("topics", "apply", env=outbid_env).returncode == 0
    return outbid_env


@pytest.fixture
def topics(applied: dict[str, str]) -> dict[str, str]:
    # Most histories here are written to Kafka only (the Redis side is in the e2e tests too).
    return {**applied, "OUTBID_REDIS_ENABLED": "false"}


def verify_json(env: dict[str, str], tmp_path: Path, *args: str) -> tuple[int, str, dict[str, Any]]:
    """Run `outbid verify --json`: its exit code, its stdout and the JSON report."""
    report = tmp_path / "verify.json"
    result = run_outbid("verify", "--json", str(report), *args, env=env)
    found: dict[str, Any] = json.loads(report.read_text()) if report.exists() else {}
    return result.returncode, result.stdout, found


def test_verify_passes_on_a_correct_history_and_reports_counts_per_check(
    topics: dict[str, str], prefix: str, tmp_path: Path
) -> None:
    write_history(topics, prefix)
    code, stdout, report = verify_json(topics, tmp_path)
    assert code == 0, stdout
    assert "all invariants hold" in stdout
    counts, checks = report["counts"], report["checks"]
    assert counts["commands"] == counts["commands_decided"] == 12 * 6 + 4
    assert counts["auctions"] == counts["highest_bids_keys"] == 12
    assert report["ok"] is True
    assert report["empty"] is False
    assert checks["command_outcomes"] == {
        "title": "every command has exactly one outcome (decision, duplicate, re-route or dead letter)",
        "status": "ok",
        "checked": 12 * 6 + 4,
        "problems": 0,
        "reason": None,
    }
    assert checks["seq_contiguous"]["checked"] == counts["events"]
    assert checks["highest_bids"]["status"] == checks["auctions"]["status"] == "ok"
    assert checks["highest_bids"]["checked"] == checks["auctions"]["checked"] == 12


def test_verify_prints_skipped_with_why_for_checks_that_did_not_run(
    topics: dict[str, str], prefix: str, tmp_path: Path
) -> None:
    write_history(topics, prefix)  # no aggregate snapshots, no dead letters; Redis is off
    code, stdout, report = verify_json(topics, tmp_path)
    assert code == 0, stdout
    assert "Redis read model == fold(events): skipped (OUTBID_REDIS_ENABLED is false)" in stdout
    assert "Redis read model == fold(events): ok" not in stdout
    assert (
        "aggregate snapshots == fold(events) at their seq: skipped "
        "(no aggregate snapshots in auction-snapshots)"
    ) in stdout
    assert "all invariants hold (3 check(s) skipped)" in stdout
    checks = report["checks"]
    assert checks["redis"] == {
        "title": "Redis read model == fold(events)",
        "status": "skipped",
        "checked": 0,
        "problems": 0,
        "reason": "OUTBID_REDIS_ENABLED is false",
    }
    assert checks["aggregate_snapshots"]["status"] == "skipped"
    assert checks["no_duplicate_dead_letters"]["status"] == "skipped"


def test_verify_on_empty_topics_says_there_is_nothing_to_audit_and_exits_2(
    topics: dict[str, str], prefix: str, tmp_path: Path
) -> None:
    code, stdout, report = verify_json(topics, tmp_path)
    assert code == 2, stdout
    assert f"nothing to audit: no commands in {prefix}bid-commands" in stdout
    assert "--allow-empty" in stdout
    assert "all invariants hold" not in stdout
    assert report["ok"] is False
    assert report["empty"] is True
    assert {c["status"] for c in report["checks"].values()} == {"skipped"}


def test_verify_allow_empty_passes_an_empty_audit_and_says_it_was_empty(
    topics: dict[str, str], tmp_path: Path
) -> None:
    code, stdout, report = verify_json(topics, tmp_path, "--allow-empty")
    assert code == 0, stdout
    assert "nothing to audit" in stdout
    assert "(allowed by --allow-empty)" in stdout
    assert report["empty"] is True


def test_verify_audits_the_redis_read_model_and_reports_a_key_with_no_auction_in_the_log(
    applied: dict[str, str], servers: Servers, prefix: str, tmp_path: Path
) -> None:
    views = write_history(applied, prefix)
    redis_prefix = Settings(  # type: ignore[call-arg]
        KAFKA_BOOTSTRAP_SERVERS=servers.kafka, topic_prefix=prefix
    ).redis_prefix
    client = redis.Redis.from_url(servers.redis)
    try:
        written = [*views.values(), replace(views["A-1"], auction_id="GHOST-1")]
        keys, args = apply_call(redis_prefix, [(view, None, 0) for view in written])
        client.eval(APPLY_IF_NEWER, len(keys), *keys, *args)
    finally:
        client.close()
    code, stdout, report = verify_json(applied, tmp_path)
    assert code == 1, stdout
    assert "redis_key_without_events" in stdout
    assert f"{auction_key(redis_prefix, 'GHOST-1')}: auction GHOST-1 has no event" in stdout
    assert "Redis read model == fold(events): 1 problem(s) in 13 checked" in stdout
    assert report["checks"]["redis"]["status"] == "failed"
    assert report["problems"].keys() == {"redis_key_without_events"}  # the 12 real ones match


@pytest.mark.parametrize("how", ["source twice", "copy again"])
def test_verify_reports_a_command_rerouted_twice(
    topics: dict[str, str], prefix: str, tmp_path: Path, how: str
) -> None:
    write_history(topics, prefix)
    write_reroutes(topics, prefix, how)
    code, stdout, report = verify_json(topics, tmp_path)
    assert code == 1, stdout
    assert "command_rerouted_twice" in stdout
    example = f"{prefix}bid-commands/0/"
    assert example in report["problems"]["command_rerouted_twice"]["examples"][0]
    assert report["problems"].keys() == {"command_rerouted_twice"}
    assert report["checks"]["command_outcomes"]["status"] == "failed"


@pytest.mark.parametrize(
    ("corruption", "problem", "check"),
    [
        ("duplicate", "duplicate_event", "no_duplicate_events"),
        ("gap", "seq_gap", "seq_contiguous"),
        ("projection", "highest_bids_differs_from_fold", "highest_bids"),
    ],
)
def test_verify_names_each_kind_of_corruption(
    topics: dict[str, str], prefix: str, tmp_path: Path, corruption: str, problem: str, check: str
) -> None:
    write_history(topics, prefix, corrupt=corruption)
    code, stdout, report = verify_json(topics, tmp_path)
    assert code == 1, stdout
    assert problem in stdout
    assert "invariants violated" in stdout
    assert report["checks"][check]["status"] == "failed"
    assert report["checks"][check]["problems"] >= 1
    if corruption == "projection":
        assert "key A-7" in stdout  # the first differing key is named
