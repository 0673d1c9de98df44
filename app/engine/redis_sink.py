"""Committed views to the Redis read model, in commit order, on a thread of their own.

The engine hands each committed transaction's views to the sink and goes on with the next
transaction while Redis answers (its round trips no longer sit between two transactions). The
queue is bounded: when Redis is slow or down (writes are retried with backoff), the engine waits
at `submit` as it waited when it wrote itself, so nothing piles up in memory. One thread, FIFO:
a view is never written before an older view of the same auction (and the Lua script is
seq-guarded anyway). A write that still fails after its retries stops the worker, as before.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from app import metrics
from app.errors import OutbidError
from app.readmodel import REDIS_BACKOFF, BlockingReadModel, View
from app.retry import retry_blocking

log = logging.getLogger(__name__)
MAX_BATCHES = 16
_STOP: list[View] = []


class RedisSinkError(OutbidError):
    """Writing to Redis failed for good (the worker stops; the read model re-syncs on restart)."""


class RedisSink:
    def __init__(self, read_model: BlockingReadModel, max_batches: int = MAX_BATCHES) -> None:
        self.read_model = read_model
        self._queue: queue.Queue[list[View]] = queue.Queue(max_batches)
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="outbid-redis", daemon=True)
        self._thread.start()

    def submit(self, views: list[View]) -> None:
        """Queue one transaction's views (blocks while `max_batches` are waiting)."""
        if self._failed is not None:
            raise RedisSinkError(f"the Redis read model cannot be written: {self._failed}")
        if views:
            self._queue.put(views)

    def close(self) -> None:
        """Write what is queued, then stop."""
        self._queue.put(_STOP)
        self._thread.join(60)
        self.read_model.close()

    def _serve(self) -> None:
        while True:
            views = self._queue.get()
            if views is _STOP:
                return
            try:
                self._write(views)
            except Exception as exc:
                log.exception("writing %d view(s) to Redis failed for good", len(views))
                self._failed = exc
                return

    def _write(self, views: list[View]) -> None:
        read_model = self.read_model
        applied = retry_blocking(
            lambda: read_model.apply_many(views),
            what=f"redis write of {len(views)} view(s)",
            backoff=REDIS_BACKOFF,
            on_retry=lambda *_: metrics.RETRIES.labels("redis").inc(),
        )
        metrics.REDIS_WRITES.labels("applied").inc(applied)
        metrics.REDIS_WRITES.labels("stale").inc(len(views) - applied)
        now = time.time()
        for _view, issued, _bids in views:
            if issued is not None:
                metrics.COMMAND_TO_REDIS.observe(max(0.0, now - issued))
