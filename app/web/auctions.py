"""GET /auctions/{auction_id}: the highest-bid projection, answered by the partition's owner.

`table_route` hashes the id's UTF-8 bytes exactly as producers key commands, so any worker
forwards the request to the one that holds the auction (faust issues #187/#514 are about
tables whose key bytes differ from the topic's; ours are the same raw bytes by construction).
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime
from typing import Any, cast

import aiohttp
import faust
from faust.web import Request, Response, View

from app.domain import decode_state, decode_view
from app.readmodel import ReadModel
from app.web.routing import ensure_route_metadata

AUCTION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")


WAIT_DEFAULT_MS = 5_000
WAIT_MAX_MS = 30_000
POLL_S = 0.02


def _age_ms(updated_at: object) -> int | None:
    if not isinstance(updated_at, str):
        return None
    try:
        moment = datetime.fromisoformat(updated_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0, int((datetime.now(UTC) - moment).total_seconds() * 1000))


async def _applied_version(auctions: Any, key: bytes, command_id: str) -> int | None:
    """The aggregate's version once `command_id` is decided (None until then)."""
    stored = auctions.get(key)
    if stored is None:
        return None
    state = decode_state(stored)
    return state.version if command_id in state.recent_command_ids else None


def register(
    app: faust.App, highest_bids: Any, auctions: Any, read_model: ReadModel | None
) -> None:
    @app.page("/auctions/{auction_id}")
    class AuctionView(View):
        async def get(self, request: Request, auction_id: str) -> Response:
            if not AUCTION_ID.match(auction_id):
                return self.json(
                    {
                        "error": "malformed auction id: use 1-128 of A-Z a-z 0-9 . _ : @ -, "
                        "starting with a letter or digit"
                    },
                    status=400,
                )
            await ensure_route_metadata(app, highest_bids)
            try:
                routed: Any = self.owner  # table_route's wrapper keeps our keyword arguments
                return cast(Response, await routed(request, auction_id=auction_id))
            except (
                aiohttp.ClientError,
                OSError,
            ) as exc:  # the owner just left; a rebalance follows
                return self.json(
                    {
                        "error": f"the worker owning this auction is unreachable ({exc}); "
                        "retry in a few seconds"
                    },
                    status=503,
                    headers={"Retry-After": "2"},
                )

        @app.table_route(table=highest_bids, match_info="auction_id")  # type: ignore[arg-type]
        async def owner(self, request: Request, auction_id: str) -> Response:
            key = auction_id.encode()
            after = request.query.get("after")  # read-your-writes token: a command_id
            from_redis = request.query.get("source") == "redis"
            if from_redis and read_model is None:
                return self.json(
                    {"error": "the Redis read model is disabled (OUTBID_REDIS_ENABLED)"}, status=503
                )
            try:
                wait_ms = min(int(request.query.get("wait_ms", WAIT_DEFAULT_MS)), WAIT_MAX_MS)
            except ValueError:
                return self.json(
                    {"error": "wait_ms must be an integer number of milliseconds"}, status=400
                )
            caught_up: bool | None = None
            started = time.monotonic()
            view: dict[str, Any] | None = None
            while True:
                if from_redis and read_model is not None:
                    view = await read_model.get(auction_id)
                else:
                    stored = highest_bids.get(key)
                    view = None if stored is None else decode_view(stored).to_json_dict()
                if after is None:
                    break
                version = await _applied_version(auctions, key, after)
                if version is not None and view is not None and int(view["seq"] or 0) >= version:
                    caught_up = True
                    break
                if time.monotonic() - started >= wait_ms / 1000:
                    caught_up = False
                    break
                await asyncio.sleep(POLL_S)
            if view is None and not (after and caught_up is False):
                return self.json({"error": f"unknown auction {auction_id!r}"}, status=404)
            answer = dict(view or {"auction_id": auction_id, "seq": 0})
            answer["source"] = "redis" if from_redis else "table"
            answer["age_ms"] = _age_ms(answer.get("updated_at"))
            if after is not None:
                answer["caught_up"] = caught_up
                answer["waited_ms"] = int((time.monotonic() - started) * 1000)
                if not caught_up:
                    answer["error"] = (
                        f"command {after!r} not yet applied after {wait_ms} ms "
                        "(or older than the idempotency window): this answer may be stale"
                    )
            return self.json(answer)
