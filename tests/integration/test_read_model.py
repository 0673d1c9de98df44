"""The Redis read model's seq guard, against a real Redis."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from app.domain import AuctionStatus, HighestBid
from app.readmodel import ReadModel
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
