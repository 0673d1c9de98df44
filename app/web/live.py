"""GET / : the live page; GET /live/snapshot and /live/stream (server-sent events) feed it.

The page is one self-contained HTML file (app/web/static/live.html: no CDN, no build step).
The stream relays the Redis read model's change channel, so every worker serves the same view.
Redis disabled: 503; Redis not answering: 503 with Retry-After (a stream it drops mid-way ends,
and the browser's EventSource reconnects).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import faust
import orjson
import redis
from aiohttp import web as aioweb
from faust.web import Request, Response, View

from app.readmodel import ReadModel
from app.web.identity import Gate

log = logging.getLogger(__name__)
PAGE = Path(__file__).with_name("static") / "live.html"
KEEPALIVE_S = 15.0
DISABLED = "the Redis read model is disabled (OUTBID_REDIS_ENABLED)"
RETRY_AFTER_S = "1"


def _unavailable(view: View, exc: redis.RedisError) -> Response:
    return view.json(
        {"error": f"the Redis read model did not answer ({exc}); retry in a moment"},
        status=503,
        headers={"Retry-After": RETRY_AFTER_S},
    )


def register(app: faust.App, read_model: ReadModel | None, gate: Gate) -> None:
    @app.page("/")
    class LivePage(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(PAGE.read_bytes(), content_type="text/html")

    @app.page("/live/snapshot")
    class Snapshot(View):
        async def get(self, request: Request) -> Response:
            denied = gate.reader(request, app.conf.web_bind)
            if denied is not None:
                return self.json(denied.body, status=denied.status, headers=denied.headers)
            if read_model is None:
                return self.json({"error": DISABLED}, status=503)
            try:
                return self.json({"hottest": await read_model.hottest(20)})
            except redis.RedisError as exc:
                return _unavailable(self, exc)

    @app.page("/live/stream")
    class Stream(View):
        async def head(self, request: Request) -> Response:
            # A HEAD has no body to stream: faust's default (the GET) would hold a Redis
            # subscription and write keepalives nobody reads for as long as the client stays.
            if read_model is None:
                return self.json({"error": DISABLED}, status=503)
            return self.bytes(b"", content_type="text/event-stream")

        async def get(self, request: Request) -> Any:
            denied = gate.reader(request, app.conf.web_bind)
            if denied is not None:
                return self.json(denied.body, status=denied.status, headers=denied.headers)
            if read_model is None:
                return self.json({"error": DISABLED}, status=503)
            pubsub = read_model.client.pubsub()
            try:  # subscribed before the 200 is sent, so that Redis down is still a 503
                await pubsub.subscribe(read_model.channel)
            except redis.RedisError as exc:
                await _close(pubsub)
                return _unavailable(self, exc)
            response = aioweb.StreamResponse(
                headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
            )
            try:
                await response.prepare(request)  # type: ignore[arg-type]  # faust hands us aiohttp's request
                while True:
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=KEEPALIVE_S
                    )
                    if message is None:
                        await response.write(b": keepalive\n\n")
                        continue
                    data = orjson.loads(message["data"])
                    await response.write(b"data: " + orjson.dumps(data) + b"\n\n")
            except (ConnectionResetError, asyncio.CancelledError):
                pass  # the browser went away
            except redis.RedisError as exc:
                log.warning("the live stream lost Redis (%s); the browser reconnects", exc)
            finally:
                await _close(pubsub)
            return response


async def _close(pubsub: Any) -> None:
    with contextlib.suppress(Exception):
        await pubsub.unsubscribe()
    with contextlib.suppress(Exception):
        await pubsub.aclose()
