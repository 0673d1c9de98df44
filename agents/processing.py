"""The per-message loop every agent shares: gate, handle, and what to do when handling fails.

- A failure that is the record's fault (not retriable: a bug, a poison record) parks the record in
  the dead-letter topic with reason `handler_error`, and the partition moves on.
- A transient failure (retriable: broker or network trouble) inside a transaction cannot be
  retried in place: part of the record's output may already be in the open transaction, and
  sending it again would duplicate it. The worker stops instead; the transaction is aborted and
  whichever worker takes the partition re-processes the record from the committed offset.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import faust

from agents.dead_letters import DeadLetters
from app.eos import GATE
from app.errors import PartitionRevokedError
from app.retry import is_retriable

log = logging.getLogger(__name__)


async def process_stream(
    app: faust.App, stream: Any, handle: Callable[[Any], Awaitable[str]], dead_letters: DeadLetters
) -> None:
    async for event in stream.events():
        message = event.message
        where = f"{message.topic}[{message.partition}]@{message.offset}"
        try:
            # PartitionRevokedError leaves the gate as an exception: the record is not "done",
            # so its offset is never committed by this worker.
            async with GATE.processing(message.tp, message.offset):
                if not await _handle(app, message, where, handle, dead_letters):
                    return
        except PartitionRevokedError as exc:
            if message.tp in app.consumer.assignment():
                # No transaction although the partition is still ours (the assignor lost track
                # of its topic mid-rebalance): the stream has moved past this record, so dropping
                # it would lose it. Stop; the next owner re-processes from the committed offset.
                log.exception("no transaction for %s, which is still assigned: stopping", where)
                await app.crash(exc)
                return
            log.info("dropped %s mid-processing: %s (its new owner re-processes it)", where, exc)


async def _handle(
    app: faust.App,
    message: Any,
    where: str,
    handle: Callable[[Any], Awaitable[str]],
    dead_letters: DeadLetters,
) -> bool:
    """Handle one record; False when the worker is stopping."""
    try:
        await handle(message)
    except PartitionRevokedError:
        raise
    except Exception as exc:
        if is_retriable(exc):
            log.exception(
                "transient failure at %s: stopping this worker so the partition "
                "is re-processed from its committed offset",
                where,
            )
            await app.crash(exc)
            return False
        log.exception("record at %s failed permanently: dead-lettering it", where)
        await dead_letters.park(message, "handler_error", repr(exc))
    return True
