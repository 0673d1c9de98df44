"""GET /healthz (the process answers) and GET /readyz (partitions assigned and tables recovered)."""

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


def register(app: faust.App, service: EngineService) -> None:
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
