"""GET /auctions/{auction_id}: the highest-bid view, answered from the owning worker's table.

Any worker answers for any auction: the auction id's partition is computed as Kafka's partitioner
places its commands; a worker that owns it answers from its committed table, any other forwards
the request to the owner found in the consumer group (app/web/routing.py). While a partition
moves (revoked, not yet recovered by its new owner) the answer is 503 with Retry-After, never a
stale or foreign one.

An auction that was never opened is unknown: 404, whatever was sent (and rejected) for it. Its
table view exists (with status "none": the rejections moved its seq), Redis holds none
(app/readmodel.py), and both sources answer the same.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime
from typing import Any

import faust
import redis
from faust.web import Request, Response, View

from app.domain import AuctionState, AuctionStatus
from app.engine.owners import Owners
from app.engine.service import EngineService
from app.readmodel import ReadModel
from app.settings import Settings
from app.topics import load_topics
from app.topics.spec import COMMANDS
from app.web.identity import Gate
from app.web.routing import Moving, Router
from tables.auctions import AUCTIONS
from tables.highest_bids import HIGHEST_BIDS
from tables.partition import PartitionTables

AUCTION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
WAIT_DEFAULT_MS = 5_000
WAIT_MAX_MS = 30_000
POLL_S = 0.02
RETRY_AFTER_S = "1"
MALFORMED_ID = (
    "malformed auction id: use 1-128 of A-Z a-z 0-9 . _ : @ -, starting with a letter or digit"
)


def _age_ms(updated_at: object) -> int | None:
    if not isinstance(updated_at, str):
        return None
    try:
        moment = datetime.fromisoformat(updated_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0, int((datetime.now(UTC) - moment).total_seconds() * 1000))


def _wait_ms(request: Request) -> int | None:
    """`wait_ms` clamped to 0..WAIT_MAX_MS (the default when absent), None when malformed."""
    try:
        return max(0, min(int(request.query.get("wait_ms", WAIT_DEFAULT_MS)), WAIT_MAX_MS))
    except ValueError:
        return None


def register(
    app: faust.App,
    settings: Settings,
    service: EngineService,
    read_model: ReadModel | None,
    gate: Gate,
) -> Router:
    partitions = load_topics(settings.topics_file).partitions(COMMANDS)
    owners = Owners(settings.kafka_client_config(), settings.group_id, settings.topic(COMMANDS))
    router = Router(app, service, owners, partitions)

    def unavailable(view: View, why: str) -> Response:
        return view.json({"error": why}, status=503, headers={"Retry-After": RETRY_AFTER_S})

    async def read_view(
        tables: PartitionTables, auction_id: str, from_redis: bool
    ) -> dict[str, Any] | None:
        if from_redis and read_model is not None:
            return await read_model.get(auction_id)
        stored = tables.read(HIGHEST_BIDS, auction_id.encode())
        return None if stored is None else HIGHEST_BIDS.decode(stored).to_json_dict()

    @app.page("/auctions/{auction_id}")
    class AuctionView(View):
        async def get(  # noqa: PLR0911 - one early answer per way a request can be wrong
            self, request: Request, auction_id: str
        ) -> Response:
            denied = gate.reader(request, app.conf.web_bind)
            if denied is not None:
                return self.json(denied.body, status=denied.status, headers=denied.headers)
            wait_ms = _wait_ms(request)
            from_redis = request.query.get("source") == "redis"
            if not AUCTION_ID.match(auction_id):
                return self.json({"error": MALFORMED_ID}, status=400)
            if wait_ms is None:
                return self.json(
                    {"error": "wait_ms must be an integer number of milliseconds"}, status=400
                )
            if from_redis and read_model is None:
                return self.json(
                    {"error": "the Redis read model is disabled (OUTBID_REDIS_ENABLED)"}, status=503
                )
            partition = router.partition(auction_id)
            try:
                tables = router.serving(partition)
                if tables is None:
                    return await router.forward(self, request, partition, wait_ms / 1000 + 5)
                return await self.answer(request, auction_id, partition, tables, wait_ms)
            except Moving:
                why = (
                    f"the partition of {auction_id!r} ({partition}) is moving between workers; "
                    "retry in a moment"
                )
            except redis.RedisError as exc:
                why = (
                    f"the Redis read model did not answer ({exc}); retry in a moment, or read "
                    "the table (without source=redis)"
                )
            return unavailable(self, why)

        async def answer(
            self,
            request: Request,
            auction_id: str,
            partition: int,
            tables: PartitionTables,
            wait_ms: int,
        ) -> Response:
            after = request.query.get("after")  # read-your-writes token: a command_id
            from_redis = request.query.get("source") == "redis"
            started = time.monotonic()
            while True:
                engine = service.engine
                if engine is None or engine.serving(partition) is not tables:
                    raise Moving  # revoked while we waited: never answer from a closed table
                view = await read_view(tables, auction_id, from_redis)
                if after is None:
                    body, status = _answer(auction_id, view, from_redis)
                    return self.json(body, status=status)
                caught_up = _caught_up(tables, auction_id, after, view)
                waited_s = time.monotonic() - started
                if caught_up or waited_s >= wait_ms / 1000:
                    body, status = _answer(auction_id, view, from_redis)
                    body["caught_up"] = caught_up
                    body["waited_ms"] = int(waited_s * 1000)
                    if not caught_up:
                        body["error"] = (
                            f"command {after!r} not yet applied after {wait_ms} ms (or older "
                            "than the idempotency window): "
                            + ("this answer may be stale" if status == 200 else body["error"])
                        )
                    elif status == 404:
                        body["error"] = (
                            f"unknown auction {auction_id!r}: command {after!r} was decided and "
                            "the auction is still not open (the command was rejected; its event "
                            "in auction-events says why)"
                        )
                    return self.json(body, status=status)
                await asyncio.sleep(POLL_S)

    return router


def _caught_up(
    tables: PartitionTables, auction_id: str, command_id: str, view: dict[str, Any] | None
) -> bool:
    """Whether `command_id` is decided and `view` shows it. Decided for an auction that is still
    not open: nothing more will show, the answer is the 404 it will stay."""
    stored = tables.read(AUCTIONS, auction_id.encode())
    if stored is None:
        return False
    state: AuctionState = AUCTIONS.decode(stored)
    if command_id not in state.recent_command_ids:
        return False  # not decided yet, or decided so long ago it left the idempotency window
    if state.status is AuctionStatus.NONE:
        return True
    seq = view.get("seq") if view is not None else None
    return isinstance(seq, int) and seq >= state.version


def _answer(
    auction_id: str, view: dict[str, Any] | None, from_redis: bool
) -> tuple[dict[str, Any], int]:
    """The body and status for `view`: 404 unless the auction was opened."""
    if view is None or view.get("status") == AuctionStatus.NONE.value:
        return {"error": f"unknown auction {auction_id!r}"}, 404
    return {
        **view,
        "source": "redis" if from_redis else "table",
        "age_ms": _age_ms(view.get("updated_at")),
    }, 200
