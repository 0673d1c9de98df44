"""`outbid verify` on histories written straight to a real broker: a clean one, and corrupted ones."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Producer

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
from app.sample import sample_commands
from tests.conftest import run_outbid

pytestmark = pytest.mark.integration


def write_history(env: dict[str, str], prefix: str, *, corrupt: str | None = None) -> None:
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


@pytest.fixture
def topics(outbid_env: dict[str, str]) -> dict[str, str]:
    assert run_outbid("topics", "apply", env=outbid_env).returncode == 0
    # These histories are written to Kafka only; the Redis side is audited in the e2e tests.
    return {**outbid_env, "OUTBID_REDIS_ENABLED": "false"}


def test_verify_passes_on_a_correct_history_and_reports_counts(
    topics: dict[str, str], prefix: str, tmp_path: Path
) -> None:
    write_history(topics, prefix)
    report = tmp_path / "verify.json"
    result = run_outbid("verify", "--json", str(report), env=topics)
    assert result.returncode == 0, result.stdout
    assert "all invariants hold" in result.stdout
    counts = json.loads(report.read_text())["counts"]
    assert counts["commands"] == counts["commands_decided"] == 12 * 6 + 4
    assert counts["auctions"] == counts["highest_bids_keys"] == 12


@pytest.mark.parametrize(
    ("corruption", "problem"),
    [
        ("duplicate", "duplicate_event"),
        ("gap", "seq_gap"),
        ("projection", "highest_bids_differs_from_fold"),
    ],
)
def test_verify_names_each_kind_of_corruption(
    topics: dict[str, str], prefix: str, corruption: str, problem: str
) -> None:
    write_history(topics, prefix, corrupt=corruption)
    result = run_outbid("verify", env=topics)
    assert result.returncode == 1, result.stdout
    assert problem in result.stdout
    assert "invariants violated" in result.stdout
    if corruption == "projection":
        assert "key A-7" in result.stdout  # the first differing key is named
