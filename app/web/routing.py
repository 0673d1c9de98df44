"""Which worker answers for an auction, and forwarding a request to it.

The auction id's partition is computed as Kafka's partitioner places its commands; the worker
that owns it answers from its committed tables, any other forwards the request to the owner
found in the consumer group (app/engine/owners.py). A forwarded request carries FORWARDED and
is never forwarded again; it keeps its Authorization header, so the owner checks the same
identity (every worker reads the same tokens file).
"""

from __future__ import annotations

import asyncio

import aiohttp
import faust
from faust.web import Request, Response, View

from app.engine.owners import Owners
from app.engine.service import EngineService
from app.topics.partitioner import partition_for
from tables.partition import PartitionTables

FORWARDED = "X-Outbid-Forwarded"  # set on a forwarded request: it is never forwarded again


class Moving(Exception):  # noqa: N818 - a condition, not an error
    """The auction's partition has no owner that can answer right now."""


class Router:
    def __init__(
        self, app: faust.App, service: EngineService, owners: Owners, partitions: int
    ) -> None:
        self.app, self.service, self.owners, self.partitions = app, service, owners, partitions

    def partition(self, auction_id: str) -> int:
        return partition_for(auction_id.encode(), self.partitions)

    def serving(self, partition: int) -> PartitionTables | None:
        """This worker's committed tables of `partition`, None when another worker owns it."""
        engine = self.service.engine
        return engine.serving(partition) if engine is not None else None

    async def forward(
        self,
        view: View,
        request: Request,
        partition: int,
        timeout_s: float,
        body: bytes | None = None,
    ) -> Response:
        """The owner's answer to `request` (with `body`), as it is; Moving when there is none."""
        engine = self.service.engine
        generation = engine.generation if engine is not None else 0
        loop = asyncio.get_running_loop()
        owner = await loop.run_in_executor(None, self.owners.owner, partition, generation)
        own_url = engine.url if engine is not None else None
        if owner is None or owner == own_url or request.headers.get(FORWARDED):
            raise Moving
        headers = {FORWARDED: "1"}
        credentials = request.headers.get("Authorization", "")
        if credentials.isascii() and credentials.isprintable() and credentials:
            headers["Authorization"] = credentials  # anything else is no token we issued
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            # faust's own aiohttp session: the app closes it when it stops (one of ours, never
            # closed, was reported "Unclosed client session" at every worker's exit)
            async with self.app.http_client.request(
                request.method,
                f"{owner}{request.url.path}",
                params=dict(request.query),
                headers=headers,
                data=body,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as answer:
                content = await answer.read()
                kept = {
                    h: answer.headers[h]
                    for h in ("Retry-After", "WWW-Authenticate")
                    if h in answer.headers
                }
                return view.bytes(
                    content, content_type="application/json", status=answer.status, headers=kept
                )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            await loop.run_in_executor(
                None, lambda: self.owners.owner(partition, generation, refresh=True)
            )
            raise Moving from exc
