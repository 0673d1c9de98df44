"""agents/processing.py: a record dropped because its partition has no transaction is never
counted as processed, and is only dropped when the partition really left this worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from agents.processing import process_stream
from app.eos import GATE
from app.errors import PartitionRevokedError

TOPIC_PARTITION = TP("bid-commands", 3)


class FakeApp:
    def __init__(self, assigned: set[TP]) -> None:
        self.consumer = SimpleNamespace(assignment=lambda: assigned)
        self.crashed_with: BaseException | None = None

    async def crash(self, exc: BaseException) -> None:
        self.crashed_with = exc


class FakeStream:
    async def events(self) -> AsyncIterator[Any]:
        message = SimpleNamespace(topic="bid-commands", partition=3, offset=41, tp=TOPIC_PARTITION)
        yield SimpleNamespace(message=message)


async def revoked(_message: Any) -> str:
    raise PartitionRevokedError("no transaction")


@pytest.mark.parametrize("still_assigned", [False, True])
def test_a_record_without_transaction_is_never_done(still_assigned: bool) -> None:
    GATE.done.pop(TOPIC_PARTITION, None)
    app = FakeApp({TOPIC_PARTITION} if still_assigned else set())
    asyncio.run(process_stream(app, FakeStream(), revoked, dead_letters=None))  # type: ignore[arg-type]
    assert TOPIC_PARTITION not in GATE.done  # its offset is never committed by this worker
    # Still ours: the stream moved past it, so only a restart re-processes it.
    assert (app.crashed_with is not None) is still_assigned
