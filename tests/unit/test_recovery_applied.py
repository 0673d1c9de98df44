"""Fix 7 (app/eos.py): table recovery must not end before every changelog record was applied.

Drives Faust's real Recovery._slurp_changelogs loop (no broker): the consumer has already handed
the whole changelog tail to Faust (so its position is past the highwater), but the records reach
the changelog queue only after the idle check fired - a consumer-thread hop on a loaded machine.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import faust.tables.recovery as faust_recovery
import pytest
from faust.types import TP

from app import eos

TP4 = TP("outbid-auctions-changelog", 4)
LSO = 11  # records 0..9, commit marker at 10: highwater (LSO - 1) = 10


class FakeTable:
    recovery_buffer_size = 1000
    standby_buffer_size = 1000

    def __init__(self) -> None:
        self.applied: list[int] = []
        self.persisted: int | None = None

    async def on_changelog_event(self, event: Any) -> None:
        return None

    def apply_changelog_batch(self, batch: Any) -> None:
        self.applied.extend(e.message.offset for e in batch)

    def persisted_offset(self, tp: TP) -> int | None:
        return self.persisted


def _event(offset: int) -> Any:
    return SimpleNamespace(message=SimpleNamespace(tp=TP4, offset=offset))


async def _recover(cls: type, monkeypatch: pytest.MonkeyPatch) -> FakeTable:
    monkeypatch.setattr(eos, "RECOVERY_IDLE_S", 0.02)
    monkeypatch.setattr(faust_recovery, "asyncio", eos._FastIdleAsyncio())
    queue: asyncio.Queue[Any] = asyncio.Queue()
    table = FakeTable()
    handed = {TP4: 9}  # the consumer thread already handed records 0..9 (and the marker) out

    async def position(tp: TP) -> int:
        if isinstance(recovery, eos.OutbidRecovery):  # what OutbidConsumerThread.position does
            return recovery.taken_in_through(tp, LSO, handed)
        return LSO

    app = SimpleNamespace(
        conf=SimpleNamespace(stream_recovery_delay=0.0),
        in_transaction=True,
        in_recovery=True,
        consumer=SimpleNamespace(position=position),
    )
    tables = SimpleNamespace(changelog_queue=queue, standbys_ready=True)
    tables.on_standbys_ready = lambda: None
    recovery = cls(app, tables)
    recovery.tp_to_table[TP4] = table
    recovery.active_tps.add(TP4)
    recovery.active_offsets[TP4] = -1  # rebuilt from scratch (database wiped after kill -9)
    recovery.active_highwaters[TP4] = LSO - 1
    recovery._set_recovery_started()
    slurp = asyncio.ensure_future(type(recovery)._slurp_changelogs.fun(recovery))

    await asyncio.sleep(0.1)  # the records are still between the consumer thread and the queue
    for offset in range(10):
        queue.put_nowait(_event(offset))
    for _ in range(200):  # the loop clears signal_recovery_end again, so poll the state
        if not recovery.in_recovery:
            break
        await asyncio.sleep(0.01)
    assert not recovery.in_recovery
    await asyncio.sleep(0.05)  # let the loop drain whatever is left
    slurp.cancel()
    return table


def test_stock_recovery_ends_on_the_position_and_skips_records_in_flight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = asyncio.run(_recover(faust_recovery.Recovery, monkeypatch))
    assert table.applied == []  # ended at the highwater; records 0..9 then "already seen"


def test_fixed_recovery_ends_only_after_every_handed_record_was_applied(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = asyncio.run(_recover(eos.OutbidRecovery, monkeypatch))
    assert table.applied == list(range(10))


def test_recovery_starts_from_the_database_not_from_a_bumped_memory_offset() -> None:
    async def run() -> tuple[int | None, int | None]:
        table = FakeTable()  # database has no offset (nothing applied yet)
        app: Any = SimpleNamespace(conf=SimpleNamespace(stream_recovery_delay=0.0))
        out = []
        for cls in (faust_recovery.Recovery, eos.OutbidRecovery):
            recovery = cls(app, SimpleNamespace())
            recovery.active_offsets[TP4] = LSO - 1  # bumped by the idle check, never applied
            recovery.add_active(table, TP4)
            out.append(recovery.active_offsets[TP4])
        return out[0], out[1]

    stock, fixed = asyncio.run(run())
    assert stock == LSO - 1  # stock seeks past the whole changelog: an empty table goes live
    assert fixed is None  # ours rebuilds from the start (or the database's own offset)


def test_taken_in_through_needs_handed_records_dequeued_and_the_marker_consumed() -> None:
    async def run() -> list[int]:
        app: Any = SimpleNamespace(conf=SimpleNamespace(stream_recovery_delay=0.0))
        recovery = eos.OutbidRecovery(app, SimpleNamespace())
        recovery.active_offsets[TP4] = 5
        seen = [recovery.taken_in_through(TP4, LSO, {TP4: 9})]  # 6..9 in flight
        recovery.active_offsets[TP4] = 9
        seen.append(recovery.taken_in_through(TP4, LSO - 1, {TP4: 9}))  # marker not consumed
        seen.append(recovery.taken_in_through(TP4, LSO, {TP4: 9}))
        return seen

    assert asyncio.run(run()) == [5, LSO - 2, LSO - 1]
