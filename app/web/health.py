"""GET /healthz (the process answers) and GET /readyz (partitions assigned and tables recovered).

Also what the worker does not serve: Faust's built-in /router and /table views (faust.web.apps,
on by default) describe Faust tables and where their keys live. This worker runs no Faust table
(the engine owns its tables; GET /auctions/{id} serves them), and those views' lookups of a
table name or key answer 500, or 503 without Retry-After. Our views are registered when the app
is created, before Faust adds its blueprints at start-up, and aiohttp resolves a path in
registration order: these 404s answer first. (faust-streaming 0.15's settings
web_router_enabled=False and web_tables_enabled=False, given where the app is created, would
drop the built-in views altogether.)
"""

from __future__ import annotations

import faust
from faust.web import Request, Response, View

from app.engine.service import EngineService


def ready(service: EngineService) -> tuple[bool, str, list[int], list[int]]:
    engine = service.engine
    if engine is None or not engine.started.is_set():
        return False, "starting", [], []
    serving, recovering = engine.assigned()
    if recovering:
        return False, "recovering tables", serving, recovering
    if not serving:
        return False, "no partitions assigned (more workers than partitions?)", [], []
    return True, "ready", serving, []


# [\s\S]: any character, a newline (%0A) included; "." would leave that path to Faust's view.
FAUST_BUILTINS = (
    "/router/",
    "/router/topics",
    r"/router/{path:[\s\S]+}",
    "/table/",
    r"/table/{path:[\s\S]+}",
)


class NotServed(View):
    async def get(self, request: Request, **_path: str) -> Response:
        return self.json(
            {"error": "not served: this worker has no Faust tables; read /auctions/{auction_id}"},
            status=404,
        )


def register(app: faust.App, service: EngineService) -> None:
    for number, path in enumerate(FAUST_BUILTINS):
        app.page(path, name=f"not-served-{number}")(type("NotServed", (NotServed,), {}))

    @app.page("/healthz")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    @app.page("/readyz")
    class Ready(View):
        async def get(self, request: Request) -> Response:
            ok, why, serving, recovering = ready(service)
            engine = service.engine
            topic = engine.commands if engine is not None else "bid-commands"
            return self.json(
                {
                    "ready": ok,
                    "reason": why,
                    "assigned": {topic: serving} if serving else {},
                    "recovering": {topic: recovering} if recovering else {},
                    "instance": engine.instance if engine is not None else None,
                },
                status=200 if ok else 503,
            )
