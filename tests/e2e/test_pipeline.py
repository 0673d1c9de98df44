"""The whole pipeline with real processes: CLI producers -> two workers -> event store -> web views."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from collections import Counter, defaultdict
from datetime import UTC, datetime

import pytest

from app.devstack.workers import get_json
from app.domain import AuctionState, Command, decide, decode_event, encode_command, evolve
from app.sample import sample_commands
from tests.conftest import run_outbid
from tests.e2e.conftest import Pipeline, produce_commands, read_all

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

GARBAGE = [
    (b"this is not json", "malformed_json"),
    (b'{"type":"PlaceBid","auction_id":"A-1"}', "missing_field"),
    (
        b'{"type":"Teleport","auction_id":"A-2","command_id":"g-3","issued_at":"2026-01-01T00:00:00Z"}',
        "unknown_command_type",
    ),
    (
        b'{"type":"PlaceBid","command_id":"g-4","issued_at":"2026-01-01T00:00:00Z","auction_id":"A-3",'
        b'"bidder_id":"b","amount":-5,"currency":"EUR"}',
        "amount_out_of_range",
    ),
]
NOT_UTF8 = (b"\xff\xfe\xfa not utf-8", "not_utf8")


def expected_views(commands: list[Command]) -> dict[str, dict[str, object]]:
    """The reference: fold every auction's commands, in the order sent, through the domain."""
    states: dict[str, AuctionState] = {}
    now = datetime.now(UTC)
    for command in commands:
        state = states.get(command.auction_id, AuctionState.empty(command.auction_id))
        for event in decide(state, command, now):
            state = evolve(state, event)
        states[command.auction_id] = state
    return {
        aid: {
            "status": s.status.value,
            "highest_bid": s.highest_bid,
            "highest_bidder": s.highest_bidder,
            "seq": s.version,
        }
        for aid, s in states.items()
    }


def read_at_least(
    line: Pipeline, topic: str, count: int, timeout_s: float = 30
) -> list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]], int, int]]:
    """The committed records of `topic`, once there are `count` (transactions commit every second)."""
    deadline = time.monotonic() + timeout_s
    records = read_all(line.bootstrap, line.topic(topic))
    while len(records) < count and time.monotonic() < deadline:
        time.sleep(1)
        records = read_all(line.bootstrap, line.topic(topic))
    return records


def console_produce(line: Pipeline, payload: bytes, *keyed: str) -> None:
    args = [
        "kafka",
        "kafka-console-producer",
        "--bootstrap-server",
        line.bootstrap,
        "--topic",
        line.topic("bid-commands"),
    ]
    if keyed:
        args += ["--property", "parse.key=true", "--property", "key.separator=|"]
    done = run_outbid(*args, env=line.env, input=payload.decode("utf-8", "surrogateescape"))
    assert done.returncode == 0, done.stderr


def kcat_produce(line: Pipeline, payload: bytes, *extra: str) -> None:
    kcat = shutil.which("kcat")
    assert kcat, "kcat must be installed (the Makefile's setup installs it)"
    done = subprocess.run(
        [
            kcat,
            "-P",
            "-b",
            line.bootstrap,
            "-t",
            line.topic("bid-commands"),
            "-X",
            "partitioner=murmur2_random",
            *extra,
        ],
        input=payload,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def wait_until_views_match(
    urls: list[str],
    expected: dict[str, dict[str, object]],
    timeout_s: float = 120,
    query: str = "",
) -> None:
    """Until every worker answers every auction as `expected` (`query`, e.g. "?source=redis",
    asks the Redis read model instead of the owner's table)."""
    deadline = time.monotonic() + timeout_s
    mismatches: list[str] = []
    while time.monotonic() < deadline:
        mismatches = []
        for url in urls:
            for auction_id, want in expected.items():
                status, got = get_json(f"{url}/auctions/{auction_id}{query}", timeout=5)
                seen = {k: got.get(k) for k in want} if status == 200 else {"http": status}
                if seen != want:
                    mismatches.append(f"{url} {auction_id}: {seen} != {want}")
        if not mismatches:
            return
        time.sleep(1)
    pytest.fail(
        f"{len(mismatches)} view(s) never matched the reference fold, e.g. {mismatches[:5]}"
    )


def test_cli_producers_to_two_workers_match_the_reference_fold_exactly_once(
    pipeline: Pipeline,
) -> None:
    pipeline.start(2)
    commands = list(sample_commands(auctions=60, bids_per_auction=8, seed=11))
    by_auction: dict[int, list[Command]] = defaultdict(list)
    for command in commands:
        by_auction[int(command.auction_id.split("-")[1])].append(command)

    def lines(numbers: range, keyed: bool) -> bytes:
        picked = [c for c in commands if int(c.auction_id.split("-")[1]) in numbers]
        return b"".join(
            (c.auction_id.encode() + b"|" if keyed else b"") + encode_command(c) + b"\n"
            for c in picked
        )

    # 1-25: kafka-console-producer with keys; 26-45: kcat with keys (murmur2, like Java);
    # 46-60: kcat without keys, all onto partition 0, so the workers must re-route them by auction id.
    console_produce(pipeline, lines(range(1, 26), keyed=True), "keyed")
    kcat_produce(pipeline, lines(range(26, 46), keyed=True), "-K", "|")
    kcat_produce(pipeline, lines(range(46, 61), keyed=False), "-p", "0")
    # garbage, unkeyed, through both CLI producers
    console_produce(pipeline, b"\n".join(g for g, _ in GARBAGE) + b"\n")
    kcat_produce(pipeline, NOT_UTF8[0] + b"\n")

    expected = expected_views(commands)
    assert len(expected) == 60
    wait_until_views_match(pipeline.urls(), expected)

    events = [
        decode_event(value)
        for _, value, _, _, _ in read_all(pipeline.bootstrap, pipeline.topic("auction-events"))
    ]
    decisions = Counter(e.command_id for e in events)
    assert set(decisions) == {c.command_id for c in commands}
    assert set(decisions.values()) == {1}, "a command was decided more than once"
    assert len({e.event_id for e in events}) == len(events)
    seqs: dict[str, list[int]] = defaultdict(list)
    for e in events:
        seqs[e.auction_id].append(e.seq)
    assert all(s == list(range(1, len(s) + 1)) for s in seqs.values())

    dead = read_at_least(pipeline, "bid-commands-dlq", len(GARBAGE) + 1)
    got = sorted(
        (value, dict(headers)["outbid.reason"].decode()) for _, value, headers, _, _ in dead
    )
    assert got == sorted([*GARBAGE, NOT_UTF8])
    for _, _, headers, _, _ in dead:
        names = dict(headers)
        assert names["outbid.source.topic"] == pipeline.topic("bid-commands").encode()
        assert int(names["outbid.source.offset"]) >= 0

    # Restart: stop worker 2; worker 1 takes over every partition and keeps answering correctly.
    pipeline.stop_worker(2)
    pipeline.wait_ready()
    wait_until_views_match(pipeline.urls(), expected)
    # worker 1 rebuilt worker 2's partitions from their changelogs, and says how much it replayed
    with urllib.request.urlopen(f"{pipeline.urls()[0]}/metrics", timeout=10) as response:
        replayed = [
            line
            for line in response.read().decode().splitlines()
            if line.startswith('outbid_recovery_records_total{table="auctions"}')
        ]
    assert replayed, "no outbid_recovery_records_total for the auctions table"
    assert float(replayed[0].split()[-1]) > 0, replayed
    extra = list(sample_commands(auctions=10, bids_per_auction=2, seed=12, prefix="R"))
    produce_commands(pipeline, extra)
    pipeline.restart_worker(2)
    # client retries: re-send some commands already decided; they must change nothing
    retried = [c for c in commands if c.auction_id in {"A-3", "A-30", "A-50"}][:12] + extra[:5]
    produce_commands(pipeline, retried)
    wait_until_views_match(pipeline.urls(), {**expected, **expected_views(extra)})
    time.sleep(2)  # the last transactions commit
    # and the whole run audits clean, the Redis read model included
    audit = run_outbid("verify", env=pipeline.env)
    assert audit.returncode == 0, audit.stdout
    assert "duplicates_absorbed" in audit.stdout
    assert "Redis read model == fold(events)" in audit.stdout


def test_http_commands_are_accepted_with_their_offset_and_bad_bodies_get_400(
    pipeline: Pipeline,
) -> None:
    pipeline.start(1)
    url = pipeline.urls()[0]
    import urllib.request  # noqa: PLC0415

    def post(path: str, body: bytes) -> tuple[int, dict[str, object]]:
        request = urllib.request.Request(f"{url}{path}", data=body, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                import json  # noqa: PLC0415

                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            import json  # noqa: PLC0415

            with exc:  # closed, or its socket leaks (a ResourceWarning in a later test)
                return exc.code, json.loads(exc.read())

    status, opened = post(
        "/auctions",
        b'{"auction_id":"H-1","seller_id":"s","starting_price":100,'
        b'"min_increment":10,"currency":"EUR","closes_at":"2030-01-01T00:00:00Z"}',
    )
    assert status == 202
    assert {"command_id", "partition", "offset"} <= set(opened)
    status, _bid = post("/auctions/H-1/bids", b'{"bidder_id":"b1","amount":150,"currency":"EUR"}')
    assert status == 202
    for body, reason in [
        (b"{", "malformed_json"),
        (b"[]", "not_an_object"),
        (b'{"bidder_id":"b1","amount":"x","currency":"EUR"}', "wrong_type"),
    ]:
        status, answer = post("/auctions/H-1/bids", body)
        assert (status, answer["reason"]) == (400, reason)
    wait_until_views_match(
        [url], {"H-1": {"status": "open", "highest_bid": 150, "highest_bidder": "b1", "seq": 2}}
    )
    # read-your-writes: the 202's token makes the read wait until the projection has applied it
    status, bid = post("/auctions/H-1/bids", b'{"bidder_id":"b2","amount":900,"currency":"EUR"}')
    assert status == 202
    status, answer = get_json(f"{url}{bid['read']}", timeout=15)
    assert (status, answer["caught_up"], answer["highest_bid"], answer["highest_bidder"]) == (
        200,
        True,
        900,
        "b2",
    )
    assert answer["age_ms"] >= 0
    status, answer = get_json(f"{url}/auctions/H-1?after={bid['token']}&source=redis", timeout=15)
    assert (answer["caught_up"], answer["source"], answer["highest_bid"]) == (True, "redis", 900)
    status, answer = get_json(f"{url}/auctions/H-1?after=never-sent&wait_ms=300", timeout=15)
    assert status == 200
    assert answer["caught_up"] is False
    assert "not yet applied" in answer["error"]
    status, answer = get_json(f"{url}/auctions/nope-404")
    assert status == 404
    status, answer = get_json(f"{url}/auctions/bad%20id")
    assert status == 400


def test_metrics_parse_and_latency_histograms_fill_after_a_run(pipeline: Pipeline) -> None:
    import urllib.request  # noqa: PLC0415

    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    pipeline.start(1)
    commands = list(sample_commands(auctions=5, bids_per_auction=4, seed=21))
    produce_commands(pipeline, commands)
    wait_until_views_match(pipeline.urls(), expected_views(commands))
    with urllib.request.urlopen(f"{pipeline.urls()[0]}/metrics", timeout=10) as response:
        text = response.read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    decided = {
        s.labels.get("outcome"): s.value
        for s in families["outbid_commands"].samples
        if s.name == "outbid_commands_total"
    }
    assert decided.get("decided") == len(commands)
    for histogram in ("outbid_command_to_event_seconds", "outbid_command_to_projection_seconds"):
        count = next(s.value for s in families[histogram].samples if s.name == f"{histogram}_count")
        assert count > 0, histogram
    assert any(s.value > 0 for s in families["outbid_assigned_partitions"].samples)
