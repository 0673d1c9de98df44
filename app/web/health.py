"""GET /healthz (the process answers) and GET /readyz (partitions assigned and tables recovered)."""

from __future__ import annotations

import faust
from faust.web import Request, Response, View


def ready(app: faust.App) -> tuple[bool, str]:
    if app.rebalancing:
        return False, "rebalancing"
    if app.in_recovery or not app.tables.actives_ready:
        return False, "recovering tables"
    if not app.consumer.assignment():
        return False, "no partitions assigned (more workers than partitions?)"
    return True, "ready"


def register(app: faust.App) -> None:
    @app.page("/healthz")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    @app.page("/readyz")
    class Ready(View):
        async def get(self, request: Request) -> Response:
            ok, why = ready(app)
            assigned: dict[str, list[int]] = {}
            for tp in sorted(app.consumer.assignment()) if ok else []:
                assigned.setdefault(tp.topic, []).append(tp.partition)
            return self.json(
                {"ready": ok, "reason": why, "assigned": assigned}, status=200 if ok else 503
            )
