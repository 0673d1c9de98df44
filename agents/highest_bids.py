"""The highest-bid projection: auction-events -> highest_bids table (at most once per seq)."""

from __future__ import annotations

import logging
import time
from typing import Any

import faust

from agents.dead_letters import DeadLetters
from agents.processing import process_stream
from app import headers, metrics
from app.domain import BidAccepted, HighestBid, apply, decode_event, decode_view, encode_view
from app.errors import InvalidMessage
from app.readmodel import REDIS_BACKOFF, ReadModel, current_minute
from app.retry import retry
from app.topology import Topology

log = logging.getLogger(__name__)
ISSUED_AT_HEADER = headers.ISSUED_AT  # set by agents/bids.py on every event record


class HighestBidProjector:
    def __init__(
        self,
        views: Any,
        dead_letters: DeadLetters,
        read_model: ReadModel | None = None,
        bid_rate: Any = None,
    ) -> None:
        self.bid_rate = bid_rate  # windowed table: accepted bids per auction per minute
        self.views = views
        self.dead_letters = dead_letters
        self.read_model = read_model

    async def handle(self, message: Any) -> str:
        try:
            event = decode_event(message.value if message.value is not None else b"")
        except InvalidMessage as exc:
            await self.dead_letters.park(message, exc.reason, exc.message)
            return "dead_letter"
        key = event.auction_id.encode()
        stored = self.views.get(key)
        view = decode_view(stored) if stored is not None else None
        updated = apply(view, event)
        if updated is view:
            metrics.PROJECTED.labels("highest_bids", "seen").inc()
            return "duplicate"  # seq already applied: a redelivery
        self.views[key] = encode_view(updated)
        metrics.PROJECTED.labels("highest_bids", "applied").inc()
        issued = self.issued_at(message)
        if issued is not None:
            metrics.COMMAND_TO_PROJECTION.observe(max(0.0, time.time() - issued))
        if self.read_model is not None:
            rate = 0
            if self.bid_rate is not None and isinstance(event, BidAccepted):
                self.bid_rate[event.auction_id] += 1
                rate = int(self.bid_rate[event.auction_id].current())
            await self.to_redis(self.read_model, updated, issued, rate)
        return "applied"

    @staticmethod
    async def to_redis(
        read_model: ReadModel, view: HighestBid, issued: float | None, rate: int
    ) -> None:
        """Outside the Kafka transaction: retried with backoff, idempotent by seq."""
        minute = current_minute()
        applied = await retry(
            lambda: read_model.apply(view, issued, rate, minute),
            what=f"redis write of {view.auction_id}",
            backoff=REDIS_BACKOFF,
            on_retry=lambda *_: metrics.RETRIES.labels("redis").inc(),
        )
        metrics.REDIS_WRITES.labels("applied" if applied else "stale").inc()
        if issued is not None:
            metrics.COMMAND_TO_REDIS.observe(max(0.0, time.time() - issued))

    @staticmethod
    def issued_at(message: Any) -> float | None:
        """The command's issued_at, carried by the event record's header."""
        for name, value in message.headers or ():
            if name == ISSUED_AT_HEADER and value:
                try:
                    return float(value)
                except ValueError:
                    return None
        return None


def register(
    app: faust.App,
    topology: Topology,
    views: Any,
    read_model: ReadModel | None,
    bid_rate: Any = None,
) -> Any:
    dead_letters = DeadLetters(topology.dead_letters)
    projector = HighestBidProjector(views, dead_letters, read_model, bid_rate)

    @app.agent(topology.events, name="project-highest-bids")
    async def project_highest_bids(stream: Any) -> None:
        await process_stream(app, stream, projector.handle, dead_letters)

    return project_highest_bids
