"""The Redis read model: one hash per auction, a "hot" sorted set, and a change channel.

Written with one server-side script that applies a view only if its seq is newer than the
stored one, so redelivery, re-processing after a crash, and a stale writer during a rebalance
can never move an auction backwards. Redis is outside the Kafka transaction: writes are
at-least-once and made idempotent by that seq guard.

Redis holds auctions that exist: a view still at status "none" (an auction never opened, which
only received rejected commands) is not written. The web API answers 404 for such an auction
from the table and from Redis alike; an auction's status never goes back to "none", so its first
written view is the one with its AuctionOpened, and nothing is lost by skipping the earlier ones.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis

from app.domain import AuctionStatus, HighestBid
from app.retry import Backoff
from app.settings import Settings

# KEYS: auction hash, this minute's hot zset, change channel.  ARGV: seq, view json, status,
# highest bid, highest bidder, updated_at, bids this minute (0: leave the zset), auction id,
# change message.
APPLY_IF_NEWER = """
local current = redis.call('HGET', KEYS[1], 'seq')
if current and tonumber(current) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'seq', ARGV[1], 'view', ARGV[2], 'status', ARGV[3],
           'highest_bid', ARGV[4], 'highest_bidder', ARGV[5], 'updated_at', ARGV[6])
if tonumber(ARGV[7]) > 0 then
  redis.call('ZADD', KEYS[2], tonumber(ARGV[7]), ARGV[8])
  redis.call('EXPIRE', KEYS[2], 600)
end
redis.call('PUBLISH', KEYS[3], ARGV[9])
return 1
"""
# Redis down for a while: ~60 s of backing off before the worker gives up and restarts.
REDIS_BACKOFF = Backoff(initial_s=0.05, factor=2.0, max_s=5.0, attempts=20)


def current_minute() -> int:
    return int(time.time() // 60)


def auction_key(prefix: str, auction_id: str) -> str:
    return f"{prefix}:auction:{auction_id}"


def hot_key(prefix: str, minute: int) -> str:
    """Accepted bids per auction in one minute (a zset that expires after 10 minutes)."""
    return f"{prefix}:hot:{minute}"


def channel(prefix: str) -> str:
    return f"{prefix}:changes"


def stored(view: HighestBid) -> bool:
    """Whether Redis keeps `view`: only auctions that were opened (see the module's docstring)."""
    return view.status is not AuctionStatus.NONE


def apply_call(
    prefix: str,
    view: HighestBid,
    issued_at: float | None,
    bids_this_minute: int,
    minute: int | None,
) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of APPLY_IF_NEWER for one view."""
    doc = view.to_json_dict()
    change = orjson.dumps({**doc, "issued_at": issued_at, "visible_at": time.time()})
    keys = [
        auction_key(prefix, view.auction_id),
        hot_key(prefix, minute if minute is not None else current_minute()),
        channel(prefix),
    ]
    args = [
        view.seq,
        orjson.dumps(doc),
        view.status.value,
        "" if view.highest_bid is None else view.highest_bid,
        view.highest_bidder or "",
        doc["updated_at"] or "",
        bids_this_minute,
        view.auction_id,
        change,
    ]
    return keys, args


class ReadModel:
    def __init__(self, settings: Settings) -> None:
        self.client: Any = aioredis.from_url(  # rediss:// for TLS; user:password@ for auth
            settings.redis_url.get_secret_value(), socket_timeout=2, socket_connect_timeout=2
        )
        self.prefix = settings.redis_prefix
        self.script: Any = self.client.register_script(APPLY_IF_NEWER)

    def key(self, auction_id: str) -> str:
        return auction_key(self.prefix, auction_id)

    def hot_key(self, minute: int) -> str:
        return hot_key(self.prefix, minute)

    @property
    def channel(self) -> str:
        return channel(self.prefix)

    async def apply(
        self,
        view: HighestBid,
        issued_at: float | None = None,
        bids_this_minute: int = 0,
        minute: int | None = None,
    ) -> bool:
        """Store `view` unless Redis already holds this auction at the same or a newer seq, or
        the auction was never opened."""
        if not stored(view):
            return False
        keys, args = apply_call(self.prefix, view, issued_at, bids_this_minute, minute)
        return bool(await self.script(keys=keys, args=args))

    async def get(self, auction_id: str) -> dict[str, Any] | None:
        raw = await self.client.hget(self.key(auction_id), "view")
        return None if raw is None else dict(orjson.loads(raw))

    async def hottest(self, count: int = 20) -> list[dict[str, Any]]:
        """The auctions with the most accepted bids this minute (or the last minute that had any)."""
        now = current_minute()
        ids: list[bytes] = []
        for minute in range(now, now - 10, -1):
            ids = await self.client.zrevrange(self.hot_key(minute), 0, count - 1)
            if ids:
                break
        views = []
        for auction_id in ids:
            view = await self.get(auction_id.decode())
            if view is not None:
                views.append(view)
        return views

    async def close(self) -> None:
        await self.client.aclose()


class BlockingReadModel:
    """The same writes for a synchronous caller (the engine), many views per round trip."""

    def __init__(self, settings: Settings) -> None:
        self.client: Any = redis.Redis.from_url(
            settings.redis_url.get_secret_value(), socket_timeout=5, socket_connect_timeout=2
        )
        self.prefix = settings.redis_prefix
        self.script: Any = self.client.register_script(APPLY_IF_NEWER)

    def apply_many(self, views: list[tuple[HighestBid, float | None, int]]) -> int:
        """Store each (view, issued_at, bids this minute) unless Redis has it at the same or a
        newer seq, or the auction was never opened; returns how many were stored. One pipeline,
        one round trip."""
        kept = [entry for entry in views if stored(entry[0])]
        if not kept:
            return 0
        minute = current_minute()
        pipe = self.client.pipeline(transaction=False)
        for view, issued_at, bids in kept:
            keys, args = apply_call(self.prefix, view, issued_at, bids, minute)
            self.script(keys=keys, args=args, client=pipe)
        return sum(1 for applied in pipe.execute() if applied)

    def close(self) -> None:
        self.client.close()
