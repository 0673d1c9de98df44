"""The audit's report model: a check that examined nothing is skipped, an empty audit is not ok,
and the ledger's and Redis' settlements name what the topics alone cannot."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from app.audit.checks import CommandLedger, PartitionAudit, settle_ledger, settle_redis_keys
from app.audit.findings import CHECKS, Findings, Status
from app.audit.reader import Record
from app.domain import AuctionState, PlaceBid, decide, encode_event

REDIS = next(c for c in CHECKS if c.name == "redis")
COMMANDS = next(c for c in CHECKS if c.name == "command_outcomes")


def audited(commands: int = 3, events: int = 3) -> Findings:
    findings = Findings()
    findings.counts.update(commands=commands, events=events)
    findings.examined.update(command_outcomes=commands)
    return findings


def test_a_check_that_examined_nothing_is_skipped_with_its_reason_never_ok() -> None:
    result = audited().result(REDIS)
    assert result.status is Status.SKIPPED
    assert result.reason == REDIS.nothing_to_check


def test_a_check_skipped_on_purpose_says_why_even_when_it_examined_items() -> None:
    findings = audited()
    findings.examined["redis"] = 4
    findings.skip("redis", "OUTBID_REDIS_ENABLED is false")
    assert findings.result(REDIS).status is Status.SKIPPED
    assert findings.result(REDIS).reason == "OUTBID_REDIS_ENABLED is false"


def test_a_check_is_ok_with_its_count_or_failed_with_its_problems() -> None:
    findings = audited()
    assert findings.result(COMMANDS).status is Status.OK
    assert findings.result(COMMANDS).checked == 3
    findings.problem("command_without_decision", "A-1: command c-1")
    findings.problem("unkeyed_command_not_rerouted", "bid-commands/0/7")
    failed = findings.result(COMMANDS)
    assert (failed.status, failed.problems, failed.checked) == (Status.FAILED, 2, 3)
    assert findings.as_json()["checks"]["command_outcomes"] == {  # type: ignore[index]
        "title": COMMANDS.title,
        "status": "failed",
        "checked": 3,
        "problems": 2,
        "reason": None,
    }


def test_an_audit_without_commands_or_events_is_empty_and_not_ok() -> None:
    assert Findings().empty
    assert not Findings().ok
    assert audited(commands=0, events=1).ok  # non-empty: ok means no problems, as before
    assert audited(commands=1, events=0).ok


def test_a_source_rerouted_twice_and_a_copy_rerouted_again_are_problems() -> None:
    ledger = CommandLedger(expect_reroute={"c/0/1", "c/0/5"})
    ledger.rerouted_sources.update({"c/0/1": 2, "c/0/5": 1, "c/0/6": 1})
    ledger.rerouted_copies.update({"c/1/2", "c/1/3", "c/0/6", "c/1/4"})
    findings = audited()
    settle_ledger(ledger, set(), findings)
    assert findings.problems["command_rerouted_twice"] == [
        "c/0/1 re-routed 2 times",
        "c/0/6 is a re-routed copy and was re-routed again",
    ]
    assert findings.counts["rerouted_as_expected"] == 2


def test_redis_keys_without_events_are_problems_and_only_in_flight_when_live() -> None:
    stored = {"A-1": "p:auction:A-1", "GHOST": "p:auction:GHOST"}
    quiet, live = audited(), audited()
    settle_redis_keys(stored, {"A-1"}, quiet, live=False)
    settle_redis_keys(stored, {"A-1"}, live, live=True)
    assert quiet.problems["redis_key_without_events"] == [
        "p:auction:GHOST: auction GHOST has no event in auction-events"
    ]
    assert not live.problem_counts
    assert live.counts["redis_in_flight"] == 1
    assert quiet.examined["redis"] == live.examined["redis"] == 1


def test_redis_need_not_hold_an_auction_never_opened_but_may_not_hold_it_wrong() -> None:
    bid = PlaceBid("c-1", datetime.now(UTC), "A-9", bidder_id="b", amount=100, currency="EUR")
    [rejected] = decide(AuctionState.empty("A-9"), bid, datetime.now(UTC))
    findings = audited()
    audit = PartitionAudit(0, "bid-commands", findings, CommandLedger(), max_recent=16)
    audit.event(Record(0, 0, b"A-9", encode_event(rejected), {}))
    audit.compare_redis({"A-9": None})
    assert not findings.problem_counts
    audit.compare_redis({"A-9": orjson.dumps({"auction_id": "A-9", "seq": 7})})
    assert findings.problem_counts["redis_differs_from_fold"] == 1


def test_every_aggregate_snapshot_is_checked_not_only_each_auction_s_newest() -> None:
    """Snapshots are read before the events, so an auction's earlier snapshots used to be
    replaced by its newest before the fold reached them: a wrong one went unchecked."""
    import dataclasses  # noqa: PLC0415
    from datetime import timedelta  # noqa: PLC0415

    from app.domain import OpenAuction, evolve  # noqa: PLC0415
    from app.snapshots import aggregates  # noqa: PLC0415
    from app.topics.incarnation import Incarnation  # noqa: PLC0415

    now = datetime.now(UTC)
    commands = [
        OpenAuction("o", now, "A-1", "s", 100, 10, "EUR", now + timedelta(hours=1)),
        PlaceBid("b-1", now, "A-1", bidder_id="x", amount=200, currency="EUR"),
        PlaceBid("b-2", now, "A-1", bidder_id="y", amount=300, currency="EUR"),
    ]
    state, events, states = AuctionState.empty("A-1"), [], []
    for command in commands:
        for event in decide(state, command, now):
            state = evolve(state, event)
            events.append(event)
            states.append(state)
    log = Incarnation("cluster", "events-topic")
    wrong = dataclasses.replace(states[1], bid_count=9)  # seq 2, but not the fold at seq 2
    snapshots = [
        aggregates.encode(states[0], 0, 0, log),
        aggregates.encode(wrong, 0, 1, log),
        aggregates.encode(states[2], 0, 2, log),
    ]
    findings = audited()
    audit = PartitionAudit(0, "bid-commands", findings, CommandLedger(), max_recent=16)
    audit.snapshots(
        [Record(0, i, b"A-1", value, {}) for i, value in enumerate(snapshots)], log, events_end=3
    )
    for offset, event in enumerate(events):
        audit.event(Record(0, offset, b"A-1", encode_event(event), {}))
    audit.settle_snapshots()
    assert findings.counts["aggregate_snapshots_checked"] == 2
    assert findings.problem_counts["aggregate_snapshot_differs"] == 1
    assert not findings.problem_counts["aggregate_snapshot_without_events"]
