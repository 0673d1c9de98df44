"""An auction never opened is unknown to the API (404) whatever was sent and rejected for it,
from the owner's table and from the Redis read model alike, and read-your-writes on a command
rejected for it answers that 404 at once instead of waiting."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime

import pytest
import redis

from app.devstack.workers import get_json
from app.domain import PlaceBid, decode_event
from app.readmodel import auction_key
from app.settings import Settings
from tests.e2e.conftest import Pipeline, produce_commands, read_all

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

OPEN = (
    b'{"seller_id":"s","starting_price":100,"min_increment":10,"currency":"EUR",'
    b'"closes_at":"2030-01-01T00:00:00Z"}'
)


def post(url: str, body: bytes) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:  # closed, or its socket leaks (a ResourceWarning in a later test)
            return exc.code, json.loads(exc.read())


def wait_decided(line: Pipeline, command_ids: set[str], timeout_s: float = 60) -> dict[str, str]:
    """command_id -> the type of the event that decided it, once all of them are committed."""
    deadline = time.monotonic() + timeout_s
    decided: dict[str, str] = {}
    while time.monotonic() < deadline:
        events = [
            decode_event(value)
            for _, value, _, _, _ in read_all(line.bootstrap, line.topic("auction-events"))
            if value is not None
        ]
        decided = {e.command_id: e.TYPE for e in events if e.command_id in command_ids}
        if set(decided) == command_ids:
            return decided
        time.sleep(0.5)
    pytest.fail(f"commands {command_ids - set(decided)} were never decided")


def test_an_auction_never_opened_is_404_from_the_table_and_redis_after_rejected_commands(
    pipeline: Pipeline,
) -> None:
    pipeline.start(1)
    url = pipeline.urls()[0]
    # U-1: a bid through the HTTP API; U-2: a bid through the real `outbid produce`.
    status, bid = post(
        f"{url}/auctions/U-1/bids", b'{"bidder_id":"b1","amount":150,"currency":"EUR"}'
    )
    assert status == 202, bid
    cli_bid = PlaceBid(
        command_id="u2-bid",
        issued_at=datetime.now(UTC),
        auction_id="U-2",
        bidder_id="b2",
        amount=150,
        currency="EUR",
    )
    produce_commands(pipeline, [cli_bid])
    decided = wait_decided(pipeline, {str(bid["command_id"]), "u2-bid"})
    assert set(decided.values()) == {"BidRejected"}

    for auction_id in ("U-1", "U-2"):
        for query in ("", "?source=redis"):
            status, answer = get_json(f"{url}/auctions/{auction_id}{query}", timeout=10)
            assert (status, answer) == (404, {"error": f"unknown auction {auction_id!r}"}), query

    # Redis holds no view for them: only auctions that were opened are written there.
    settings = Settings(REDIS_URL=pipeline.env["REDIS_URL"], topic_prefix=pipeline.prefix)  # type: ignore[call-arg]
    client = redis.Redis.from_url(pipeline.env["REDIS_URL"])
    try:
        for auction_id in ("U-1", "U-2"):
            assert not client.exists(auction_key(settings.redis_prefix, auction_id))
    finally:
        client.close()


def test_reading_after_a_command_rejected_for_an_unknown_auction_is_a_404_at_once(
    pipeline: Pipeline,
) -> None:
    pipeline.start(1)
    url = pipeline.urls()[0]
    status, bid = post(
        f"{url}/auctions/U-3/bids", b'{"bidder_id":"b1","amount":150,"currency":"EUR"}'
    )
    assert status == 202, bid
    for query in ("", "&source=redis"):
        started = time.monotonic()
        status, answer = get_json(f"{url}{bid['read']}&wait_ms=20000{query}", timeout=30)
        assert time.monotonic() - started < 10, "waited for a view that never comes"
        assert (status, answer["caught_up"]) == (404, True), answer
        assert "unknown auction 'U-3'" in str(answer["error"])
        assert "was decided" in str(answer["error"])
    # Not decided yet (never sent): still the 404 an unknown auction is, after wait_ms.
    status, answer = get_json(f"{url}/auctions/U-3?after=never-sent&wait_ms=200", timeout=10)
    assert (status, answer["caught_up"]) == (404, False), answer
    assert "not yet applied" in str(answer["error"])

    # Opened later, the auction answers from both sources: the rejected bid's seq came first.
    status, opened = post(f"{url}/auctions", b'{"auction_id":"U-3",' + OPEN[1:])
    assert status == 202, opened
    status, bid = post(
        f"{url}/auctions/U-3/bids", b'{"bidder_id":"b2","amount":200,"currency":"EUR"}'
    )
    assert status == 202, bid
    for query in ("", "&source=redis"):
        status, answer = get_json(f"{url}{bid['read']}&wait_ms=20000{query}", timeout=30)
        assert (status, answer["caught_up"]) == (200, True), answer
        assert (answer["status"], answer["highest_bid"], answer["seq"]) == ("open", 200, 3)
