"""GET /metrics: Prometheus text format, with consumer lag computed at scrape time."""

from __future__ import annotations

import time
from typing import Any

import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app import metrics


def _refresh_lag(app: faust.App) -> None:
    consumer: Any = app.consumer
    try:
        assignment = consumer.assignment()
    except Exception:
        return
    metrics.ASSIGNED.set(len(assignment))
    metrics.CONSUMER_LAG.clear()
    for tp in assignment:
        highwater = consumer.highwater(tp)
        position = consumer._committed_offset.get(tp)  # Faust's last committed position
        if highwater is not None and position is not None:
            metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(
                max(0, highwater - position)
            )


def register(app: faust.App) -> None:
    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            _refresh_lag(app)
            return self.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])


def track_rebalances(app: faust.App) -> None:
    """Count assignments and time each one until its tables are recovered."""
    started: list[float] = []

    async def on_assigned(_sender: Any, *_args: Any, **_kwargs: Any) -> None:
        metrics.REBALANCES.inc()
        started.append(time.monotonic())

    async def on_complete(_sender: Any, *_args: Any, **_kwargs: Any) -> None:
        if started:
            metrics.RECOVERY.observe(time.monotonic() - started.pop())
            started.clear()

    app.on_partitions_assigned.connect(on_assigned)  # type: ignore[arg-type]  # mode types `signal` as required
    app.on_rebalance_complete.connect(on_complete)  # type: ignore[arg-type]
