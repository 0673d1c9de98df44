"""The Redis read model's seq guard, against a real Redis."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import orjson
import pytest
import redis

from app import readmodel
from app.domain import AuctionStatus, HighestBid
from app.readmodel import (
    BlockingReadModel,
    ReadModel,
    auction_key,
    channel,
    current_minute,
    hot_key,
)
from app.settings import Settings
from tests.conftest import Servers

pytestmark = pytest.mark.integration


def test_a_stale_seq_never_overwrites_a_newer_one(servers: Servers, prefix: str) -> None:
    settings = Settings(REDIS_URL=servers.redis, topic_prefix=prefix)  # type: ignore[call-arg]
    newer = HighestBid(
        auction_id="A-1", status=AuctionStatus.OPEN, highest_bid=500, highest_bidder="b", seq=5
    )
    older = replace(newer, highest_bid=100, highest_bidder="a", seq=3)

    async def scenario() -> tuple[bool, bool, bool, dict[str, object] | None, list[object]]:
        model = ReadModel(settings)
        try:
            first = await model.apply(newer, bids_this_minute=1)
            stale = await model.apply(older)  # e.g. a re-processed event after a restart
            same = await model.apply(replace(newer, highest_bid=999))  # same seq: a redelivery
            return first, stale, same, await model.get("A-1"), await model.hottest()
        finally:
            await model.close()

    first, stale, same, stored, hottest = asyncio.run(scenario())
    assert (first, stale, same) == (True, False, False)
    assert stored is not None
    assert (stored["seq"], stored["highest_bid"], stored["highest_bidder"]) == (5, 500, "b")
    assert [view["auction_id"] for view in hottest] == ["A-1"]  # type: ignore[index]


@pytest.mark.parametrize("batch", [readmodel.BATCH, 2], ids=["one-call", "calls-of-two"])
def test_one_batch_applies_each_view_in_order_under_the_same_guard(
    servers: Servers, prefix: str, batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine writes a committed transaction's views in one script call (a recovered
    partition's in calls of BATCH): each view is judged against what was written before it,
    never-opened auctions are left out, and every stored view is announced on the change channel
    (the live page)."""
    monkeypatch.setattr(readmodel, "BATCH", batch)
    prefix = f"{prefix}-{batch}"
    settings = Settings(REDIS_URL=servers.redis, topic_prefix=prefix)  # type: ignore[call-arg]
    model = BlockingReadModel(settings)
    client = redis.Redis.from_url(servers.redis)
    listener = client.pubsub(ignore_subscribe_messages=True)
    try:
        listener.subscribe(channel(model.prefix))
        opened = HighestBid(auction_id="B-1", status=AuctionStatus.OPEN, seq=1)
        assert model.apply_many([(replace(opened, highest_bid=900, seq=9), 1.0, 0)]) == 1
        batch = [
            (replace(opened, auction_id="B-2", highest_bid=10, seq=3), 2.0, 1),
            (replace(opened, auction_id="B-2", highest_bid=20, seq=4), 3.0, 2),  # newer: stored
            (replace(opened, auction_id="B-2", highest_bid=15, seq=2), 4.0, 3),  # older: not
            (replace(opened, highest_bid=100, seq=5), 5.0, 1),  # B-1 holds seq 9 already
            (HighestBid(auction_id="B-3", seq=1), 6.0, 0),  # never opened: not written
        ]
        minutes = {current_minute()}
        assert model.apply_many(batch) == 2
        minutes.add(current_minute())  # the batch ranks in the minute it was written
        assert model.apply_many([]) == 0
        stored = {
            auction: orjson.loads(
                client.hget(auction_key(model.prefix, auction), "view") or b"null"
            )
            for auction in ("B-1", "B-2", "B-3")
        }
        assert stored["B-1"]["highest_bid"] == 900
        assert (stored["B-2"]["seq"], stored["B-2"]["highest_bid"]) == (4, 20)
        assert stored["B-3"] is None
        assert 2 in [client.zscore(hot_key(model.prefix, minute), "B-2") for minute in minutes]
        announced = []
        deadline = time.monotonic() + 5
        while len(announced) < 3 and time.monotonic() < deadline:
            message = listener.get_message(timeout=0.5)
            if message is not None:
                announced.append(orjson.loads(message["data"]))
        assert [(m["auction_id"], m["seq"], m["issued_at"]) for m in announced] == [
            ("B-1", 9, 1.0),
            ("B-2", 3, 2.0),
            ("B-2", 4, 3.0),
        ]
    finally:
        listener.close()
        client.close()
        model.close()
