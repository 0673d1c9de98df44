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

# One call applies a whole batch of views (a committed transaction's): per view one script call
# in a pipeline cost the writer about 40 us of Python per view (command packing, one reply to
# parse each), on a thread that shares the GIL with the engine (docs/benchmarks.md, "Levers tried").
# KEYS: this minute's hot zset, the change channel, then one auction hash per view.
# ARGV: nine per view, in KEYS order: seq, view json, status, highest bid, highest bidder,
# updated_at, bids this minute (0: leave the zset), auction id, change message.
# Returns how many views were stored.
APPLY_IF_NEWER = """
local hot, changes = KEYS[1], KEYS[2]
local stored, ranked = 0, false
for i = 3, #KEYS do
  local a = (i - 3) * 9
  local current = redis.call('HGET', KEYS[i], 'seq')
  if not current or tonumber(current) < tonumber(ARGV[a + 1]) then
    redis.call('HSET', KEYS[i], 'seq', ARGV[a + 1], 'view', ARGV[a + 2], 'status', ARGV[a + 3],
               'highest_bid', ARGV[a + 4], 'highest_bidder', ARGV[a + 5], 'updated_at', ARGV[a + 6])
    if tonumber(ARGV[a + 7]) > 0 then
      redis.call('ZADD', hot, tonumber(ARGV[a + 7]), ARGV[a + 8])
      ranked = true
    end
    redis.call('PUBLISH', changes, ARGV[a + 9])
    stored = stored + 1
  end
end
if ranked then
  redis.call('EXPIRE', hot, 600)
end
return stored
"""
# What the engine writes per changed auction: (view, the command's issued_at, bids this minute).
View = tuple[HighestBid, float | None, int]
# Views per script call: a script runs alone on the Redis server, so a partition's worth of
# views (written at every assignment) goes in several calls.
BATCH = 500
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
    views: list[View],
    minute: int | None = None,
) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of APPLY_IF_NEWER for (view, issued_at, bids this minute) in order: views of
    auctions never opened are left out (see the module's docstring)."""
    keys = [hot_key(prefix, minute if minute is not None else current_minute()), channel(prefix)]
    args: list[Any] = []
    now = time.time()
    for view, issued_at, bids_this_minute in views:
        if not stored(view):
            continue
        doc = view.to_json_dict()
        keys.append(auction_key(prefix, view.auction_id))
        args += (
            view.seq,
            orjson.dumps(doc),
            view.status.value,
            "" if view.highest_bid is None else view.highest_bid,
            view.highest_bidder or "",
            doc["updated_at"] or "",
            bids_this_minute,
            view.auction_id,
            orjson.dumps({**doc, "issued_at": issued_at, "visible_at": now}),
        )
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
        keys, args = apply_call(self.prefix, [(view, issued_at, bids_this_minute)], minute)
        if not args:
            return False
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

    def apply_many(self, views: list[View]) -> int:
        """Store each (view, issued_at, bids this minute) unless Redis has it at the same or a
        newer seq, or the auction was never opened; returns how many were stored. One script
        call per BATCH views (a transaction's views are one call; the views of a whole recovered
        partition are many, so that no single call holds Redis for long)."""
        stored_count = 0
        for start in range(0, len(views), BATCH):
            keys, args = apply_call(self.prefix, views[start : start + BATCH])
            if args:
                stored_count += int(self.script(keys=keys, args=args))
        return stored_count

    def close(self) -> None:
        self.client.close()
