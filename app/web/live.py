"""GET / : the live page; GET /live/snapshot and /live/stream (server-sent events) feed it.

The page is one self-contained HTML file (app/web/static/live.html: no CDN, no build step).
The stream relays the Redis read model's change channel, so every worker serves the same view.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import faust
import orjson
from aiohttp import web as aioweb
from faust.web import Request, Response, View

from app.readmodel import ReadModel

PAGE = Path(__file__).with_name("static") / "live.html"
KEEPALIVE_S = 15.0


def register(app: faust.App, read_model: ReadModel | None) -> None:
    @app.page("/")
    class LivePage(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(PAGE.read_bytes(), content_type="text/html")

    @app.page("/live/snapshot")
    class Snapshot(View):
        async def get(self, request: Request) -> Response:
            if read_model is None:
                return self.json(
                    {"error": "the Redis read model is disabled (OUTBID_REDIS_ENABLED)"}, status=503
                )
            return self.json({"hottest": await read_model.hottest(20)})

    @app.page("/live/stream")
    class Stream(View):
        async def get(self, request: Request) -> Any:
            if read_model is None:
                return self.json(
                    {"error": "the Redis read model is disabled (OUTBID_REDIS_ENABLED)"}, status=503
                )
            response = aioweb.StreamResponse(
                headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
            )
            await response.prepare(request)  # type: ignore[arg-type]  # faust hands us aiohttp's request
            pubsub = read_model.client.pubsub()
            await pubsub.subscribe(read_model.channel)
            try:
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
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.unsubscribe()
                    await pubsub.aclose()
            return response
