"""app/eos.py's fixes to faust-streaming, each against the stock class it replaces (no broker).

Stock Faust and our subclass get the same inputs; the stock one shows the defect, ours does not.
The broker-level consequences are shown in tests/e2e/test_faust_fixes.py.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from faust.streams import _current_event
from faust.transport.consumer import TransactionManager
from faust.types import TP

from app import eos
from app.errors import PartitionRevokedError


class FakeProducer:
    def __init__(self, owned: set[str]) -> None:
        self._transaction_producers = dict.fromkeys(owned)
        self.sent: list[tuple[str, int | None, str | None]] = []

    async def send(
        self,
        topic: str,
        key: Any,
        value: Any,
        partition: int | None,
        timestamp: Any,
        headers: Any,
        *,
        transactional_id: str | None = None,
    ) -> str:
        self.sent.append((topic, partition, transactional_id))
        return "future"


def _manager(cls: type, owned: set[str], dest_partition: int) -> tuple[Any, FakeProducer]:
    producer = FakeProducer(owned)
    groups = {"in": 0, "out": 0, "changelog": 0}  # the assignor knows the topics it assigns
    app = SimpleNamespace(
        conf=SimpleNamespace(id="app"),
        assignor=SimpleNamespace(group_for_topic=groups.__getitem__),
        tables=SimpleNamespace(changelog_topics={"changelog"}),
    )
    manager = cls.__new__(cls)
    manager.app, manager.producer = app, producer
    manager.consumer = SimpleNamespace(key_partition=lambda topic, key, partition: dest_partition)
    return manager, producer


def _in_event(partition: int) -> Any:
    event = SimpleNamespace(message=SimpleNamespace(topic="in", partition=partition))
    return _current_event.set(lambda: event)


def test_stock_faust_picks_the_producer_of_the_destination_partition() -> None:
    manager, producer = _manager(TransactionManager, owned={"app-0-3"}, dest_partition=5)
    token = _in_event(3)
    try:
        asyncio.run(manager.send("out", b"k", b"v", None, None, None))
    finally:
        _current_event.reset(token)
    # partition 5 is not ours: the real driver raises "No transaction producer found"
    assert producer.sent == [("out", 5, "app-0-5")]


def test_fixed_manager_sends_in_the_transaction_of_the_source_partition() -> None:
    manager, producer = _manager(eos.OutbidTransactionManager, owned={"app-0-3"}, dest_partition=5)
    token = _in_event(3)
    try:
        asyncio.run(manager.send("out", b"k", b"v", None, None, None))
    finally:
        _current_event.reset(token)
    assert producer.sent == [("out", 5, "app-0-3")]


def test_fixed_manager_refuses_to_send_for_a_revoked_partition() -> None:
    manager, producer = _manager(eos.OutbidTransactionManager, owned=set(), dest_partition=5)
    token = _in_event(3)
    try:
        with pytest.raises(PartitionRevokedError):
            asyncio.run(manager.send("out", b"k", b"v", None, None, None))
    finally:
        _current_event.reset(token)
    assert producer.sent == []  # never outside a transaction


def test_sends_outside_any_event_are_not_transactional_unless_they_are_table_writes() -> None:
    manager, producer = _manager(eos.OutbidTransactionManager, owned={"app-0-2"}, dest_partition=2)
    asyncio.run(manager.send("out", b"k", b"v", None, None, None))  # e.g. HTTP ingestion
    asyncio.run(manager.send("changelog", b"k", b"v", None, None, None))  # a buffered table write
    assert producer.sent == [("out", 2, None), ("changelog", 2, "app-0-2")]


def test_gate_does_not_count_a_record_that_straddles_a_revocation() -> None:
    gate = eos.ProcessingGate()
    tp = TP("in", 0)

    async def scenario() -> None:
        async with gate.processing(tp, 10):
            pass
        async with gate.processing(tp, 11):
            gate.forget({TP("in", 1)})  # a rebalance revokes while record 11 is in flight

    asyncio.run(scenario())
    assert gate.done == {tp: 11}  # record 10 is done; 11 will be re-processed from the commit


def test_gate_excludes_processing_while_a_commit_holds_it() -> None:
    gate = eos.ProcessingGate()
    order: list[str] = []

    async def commit() -> None:
        async with gate.lock:
            order.append("commit-start")
            await asyncio.sleep(0.05)
            order.append("commit-end")

    async def process() -> None:
        await asyncio.sleep(0.01)
        async with gate.processing(TP("in", 0), 1):
            order.append("process")

    async def both() -> None:
        await asyncio.gather(commit(), process())

    asyncio.run(both())
    assert order == ["commit-start", "commit-end", "process"]


def test_recovery_idle_wait_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[float | None] = []

    async def fake_wait_for(awaitable: Any, timeout: float | None) -> None:  # noqa: ASYNC109
        seen.append(timeout)
        awaitable.close()

    monkeypatch.setattr(eos.asyncio, "wait_for", fake_wait_for)

    async def idle() -> None:
        return None

    shim = eos._FastIdleAsyncio()
    asyncio.run(shim.wait_for(idle(), timeout=5.0))  # Faust's idle wait in Recovery
    assert seen == [eos.RECOVERY_IDLE_S]
    assert shim.sleep is asyncio.sleep  # everything else is the real asyncio


class CommittingProducer(FakeProducer):
    def __init__(self, owned: set[str]) -> None:
        super().__init__(owned)
        self.committed: list[dict[str, dict[TP, int]]] = []
        self.buffer = None  # not a TrackingProducerBuffer: nothing to wait for

    async def commit_transactions(
        self, offsets: dict[str, dict[TP, int]], group_id: str, start_new_transaction: bool
    ) -> None:
        self.committed.append({tid: dict(tps) for tid, tps in offsets.items()})

    async def flush(self) -> None:
        pass


@pytest.mark.parametrize(
    ("cls", "commits"), [(TransactionManager, False), (eos.OutbidTransactionManager, True)]
)
def test_a_revoke_commits_what_was_processed_with_its_offsets(cls: type, commits: bool) -> None:
    """Faust's own revoke-time commit never reaches the manager: it drops its acked offsets of
    the revoked partitions first, then finds nothing to commit (faust/transport/consumer.py,
    Consumer.on_partitions_revoked -> _commit_offsets). The manager's revoke hook is the last
    moment the processed records' outputs and their offsets can go out together."""
    tp = TP("in", 5)
    manager, _ = _manager(cls, owned={"app-0-5"}, dest_partition=5)
    producer = CommittingProducer({"app-0-5"})
    manager.producer = producer
    manager.app.producer = producer
    manager.app.consumer = SimpleNamespace(assignment=set)  # aiokafka: already emptied
    manager.app.tables._pending_persisted_offsets = {}
    eos.GATE.done.clear()
    eos.GATE.done[tp] = 5190  # records up to 5189 processed, their outputs in app-0-5's transaction
    asyncio.run(manager.on_partitions_revoked({tp}))
    assert producer.committed == ([{"app-0-5": {tp: 5190}}] if commits else [])
    eos.GATE.done.clear()


class NeverFetched:
    """aiokafka's consumer for a changelog partition it has not fetched in this assignment."""

    def last_stable_offset(self, tp: TP) -> int:
        return -1  # aiokafka: unknown until a fetch response carries it

    async def end_offsets(self, partitions: list[TP]) -> dict[TP, int]:
        return dict.fromkeys(partitions, 42)  # ListOffsets under read_committed: the LSO


@pytest.mark.parametrize(
    ("cls", "highwater"),
    [(eos.faust_aiokafka.AIOKafkaConsumerThread, -1), (eos.OutbidConsumerThread, 42)],
)
def test_highwater_of_an_unfetched_changelog_partition(cls: type, highwater: int) -> None:
    """Fix 5: under exactly_once stock Faust reads the cached LSO, -1 for a partition not fetched
    yet, and recovery of a partition with a persisted offset then raises ConsistencyError."""
    thread = cls.__new__(cls)
    thread._consumer = NeverFetched()
    thread.consumer = SimpleNamespace(in_transaction=True)
    tp = TP("outbid-auctions-changelog", 3)
    assert asyncio.run(thread._highwaters([tp])) == {tp: highwater}


def test_a_revoke_does_not_commit_a_transaction_faust_already_ended() -> None:
    """Committing a producer that is not in a transaction raises IllegalOperation and would stop
    the worker at every such revoke (seen in a 100k chaos run with fix 8's first version)."""
    tp = TP("in", 5)
    manager, _ = _manager(eos.OutbidTransactionManager, owned={"app-0-5"}, dest_partition=5)
    producer = CommittingProducer({"app-0-5"})
    ended = SimpleNamespace(_txn_manager=SimpleNamespace(is_in_transaction=lambda: False))
    producer._transaction_producers["app-0-5"] = ended
    manager.producer = producer
    manager.app.producer = producer
    manager.app.consumer = SimpleNamespace(assignment=set)
    manager.app.tables._pending_persisted_offsets = {}
    eos.GATE.done.clear()
    eos.GATE.done[tp] = 5190
    asyncio.run(manager.on_partitions_revoked({tp}))
    assert producer.committed == []
    eos.GATE.done.clear()


class LosingProducer(CommittingProducer):
    """aiokafka after a non-retriable produce error: the record's future fails, and nothing else
    happens (the transaction is not marked failed, so commit_transaction would still commit)."""

    async def send(self, *args: Any, transactional_id: str | None = None) -> Any:
        await super().send(*args, transactional_id=transactional_id)
        failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        failed.set_exception(RuntimeError("KafkaError: batch failed (non-retriable)"))
        return failed


@pytest.mark.parametrize("fixed", [False, True])
def test_a_transaction_that_lost_a_record_is_never_committed(fixed: bool) -> None:
    """Fix 9: committing would make the command's offset permanent without its event."""
    tp = TP("in", 5)
    manager, _ = _manager(eos.OutbidTransactionManager, owned={"app-0-5"}, dest_partition=5)
    producer = LosingProducer({"app-0-5"})
    crashed: list[BaseException] = []

    async def crash(exc: BaseException) -> None:
        crashed.append(exc)

    manager.producer = producer
    manager.track_sends = fixed
    manager.app.producer = producer
    manager.app.crash = crash
    manager.app.consumer = SimpleNamespace(assignment=lambda: {tp})
    manager.app.tables._pending_persisted_offsets = {}
    eos.GATE.done.clear()
    eos.SEND_FAILURES.clear()

    async def scenario() -> None:
        token = _in_event(5)
        try:
            sent = await manager.send("out", b"k", b"v", None, None, None)  # the event
        finally:
            _current_event.reset(token)
        await asyncio.sleep(0)  # done callbacks run
        assert sent.exception() is not None
        eos.GATE.done[tp] = 11  # the record at offset 10 was handled
        await manager.commit({tp: 11})

    asyncio.run(scenario())
    if fixed:
        assert producer.committed == []
        assert len(crashed) == 1
        assert isinstance(crashed[0], eos.TransactionOutputLostError)
    else:  # the defect: offset 11 commits, the event is gone
        assert producer.committed == [{"app-0-5": {tp: 11}}]
        assert crashed == []
    eos.GATE.done.clear()
    eos.SEND_FAILURES.clear()
