"""GET /auctions/{auction_id}: the highest-bid view, answered from the owning worker's table.

Any worker answers for any auction: the auction id's partition is computed as Kafka's partitioner
places its commands; a worker that owns it answers from its committed table, any other forwards
the request to the owner found in the consumer group (app/engine/owners.py). While a partition
moves (revoked, not yet recovered by its new owner) the answer is 503 with Retry-After, never a
stale or foreign one.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
import faust
from faust.web import Request, Response, View

from app.engine.owners import Owners
from app.engine.service import EngineService
from app.readmodel import ReadModel
from app.settings import Settings
from app.topics import load_topics
from app.topics.partitioner import partition_for
from app.topics.spec import COMMANDS
from tables.auctions import AUCTIONS
from tables.highest_bids import HIGHEST_BIDS
from tables.partition import PartitionTables

AUCTION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
WAIT_DEFAULT_MS = 5_000
WAIT_MAX_MS = 30_000
POLL_S = 0.02
FORWARDED = "X-Outbid-Forwarded"  # set on a forwarded request: it is never forwarded again
RETRY_AFTER_S = "1"


class Moving(Exception):  # noqa: N818 - a condition, not an error
    """The auction's partition has no owner that can answer right now."""


def _age_ms(updated_at: object) -> int | None:
    if not isinstance(updated_at, str):
        return None
    try:
        moment = datetime.fromisoformat(updated_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0, int((datetime.now(UTC) - moment).total_seconds() * 1000))


def _applied_version(tables: PartitionTables, key: bytes, command_id: str) -> int | None:
    """The aggregate's version once `command_id` is decided (None until then)."""
    stored = tables.read(AUCTIONS, key)
    if stored is None:
        return None
    state = AUCTIONS.decode(stored)
    return int(state.version) if command_id in state.recent_command_ids else None


def register(
    app: faust.App, settings: Settings, service: EngineService, read_model: ReadModel | None
) -> None:
    partitions = load_topics(settings.topics_file).partitions(COMMANDS)
    owners = Owners(settings.kafka_bootstrap_servers, settings.group_id, settings.topic(COMMANDS))
    session: list[aiohttp.ClientSession] = []

    def unavailable(view: View, why: str) -> Response:
        return view.json({"error": why}, status=503, headers={"Retry-After": RETRY_AFTER_S})

    async def forward(view: View, request: Request, partition: int) -> Response:
        engine = service.engine
        generation = engine.generation if engine is not None else 0
        loop = asyncio.get_running_loop()
        owner = await loop.run_in_executor(None, owners.owner, partition, generation)
        own_url = engine.url if engine is not None else None
        if owner is None or owner == own_url or request.headers.get(FORWARDED):
            raise Moving
        if not session:
            session.append(aiohttp.ClientSession())
        try:
            wait_ms = min(int(request.query.get("wait_ms", WAIT_DEFAULT_MS)), WAIT_MAX_MS)
        except ValueError:
            wait_ms = WAIT_DEFAULT_MS
        timeout = aiohttp.ClientTimeout(total=wait_ms / 1000 + 5)
        try:
            async with session[0].get(
                f"{owner}{request.url.path}",
                params=dict(request.query),
                headers={FORWARDED: "1"},
                timeout=timeout,
            ) as answer:
                body = await answer.read()
                headers = (
                    {"Retry-After": answer.headers["Retry-After"]} if answer.status == 503 else {}
                )
                return view.bytes(
                    body, content_type="application/json", status=answer.status, headers=headers
                )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            await loop.run_in_executor(
                None, lambda: owners.owner(partition, generation, refresh=True)
            )
            raise Moving from exc

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
            try:
                wait_ms = min(int(request.query.get("wait_ms", WAIT_DEFAULT_MS)), WAIT_MAX_MS)
            except ValueError:
                return self.json(
                    {"error": "wait_ms must be an integer number of milliseconds"}, status=400
                )
            from_redis = request.query.get("source") == "redis"
            if from_redis and read_model is None:
                return self.json(
                    {"error": "the Redis read model is disabled (OUTBID_REDIS_ENABLED)"}, status=503
                )
            key = auction_id.encode()
            partition = partition_for(key, partitions)
            engine = service.engine
            try:
                tables = engine.serving(partition) if engine is not None else None
                if tables is None:
                    return await forward(self, request, partition)
                return await self.answer(request, auction_id, key, partition, tables, wait_ms)
            except Moving:
                return unavailable(
                    self,
                    f"the partition of {auction_id!r} ({partition}) is moving between workers; "
                    "retry in a moment",
                )

        async def answer(
            self,
            request: Request,
            auction_id: str,
            key: bytes,
            partition: int,
            tables: PartitionTables,
            wait_ms: int,
        ) -> Response:
            after = request.query.get("after")  # read-your-writes token: a command_id
            from_redis = request.query.get("source") == "redis"
            caught_up: bool | None = None
            started = time.monotonic()
            view: dict[str, Any] | None = None
            while True:
                engine = service.engine
                if engine is None or engine.serving(partition) is not tables:
                    raise Moving  # revoked while we waited: never answer from a closed table
                if from_redis and read_model is not None:
                    view = await read_model.get(auction_id)
                else:
                    stored = tables.read(HIGHEST_BIDS, key)
                    view = None if stored is None else HIGHEST_BIDS.decode(stored).to_json_dict()
                if after is None:
                    break
                version = _applied_version(tables, key, after)
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
