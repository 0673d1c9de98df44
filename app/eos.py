"""Exactly-once processing on faust-streaming: what its `exactly_once` mode gets wrong, fixed here.

faust-streaming 0.15 keeps one transactional producer per assigned partition and, every commit
interval, commits the consumer offsets into those transactions. As shipped it breaks in four ways
(read in faust/transport/consumer.py and faust/tables/*, see docs/guarantees.md):

1. Producer choice by *destination* partition (TransactionManager.send): an output to a partition
   this worker does not own raises ProducerSendError, an output topic it does not consume raises
   KeyError, and an output to an owned-but-idle partition sits in a transaction nobody commits.
   -> `OutbidTransactionManager.send` picks the producer of the *source* event's partition.
2. The commit does not flush Faust's own producer buffer (table changelog writes are queued there),
   so a changelog write can miss the transaction that commits its source offset.
   -> `TrackingProducerBuffer.wait_sent` is a barrier; `commit` waits on it.
3. Agents keep processing while a commit is in flight: a send during aiokafka's commit raises
   IllegalOperation, and the committed offsets (Faust's acked offsets) lag the outputs already in the
   transaction by one message, so a crash right after the commit re-processes that message.
   -> `ProcessingGate`: processing one message and committing exclude each other, and the commit
   uses the offsets of messages whose outputs are all in the transaction.
4. Pending changelog offsets are keyed by changelog partition but looked up by source partition
   (TableManager.on_commit), so under exactly_once RocksDB's stored offset never advances and every
   restart replays everything written since the last recovery.
   -> `commit` persists the changelog offsets of the partitions it committed.
5. Under exactly_once the changelog "highwater" used by table recovery is aiokafka's cached
   last_stable_offset, which is unknown (-1/None) for a partition this consumer never fetched -
   every changelog partition right after an assignment. Recovery then sees "persisted offset
   above highwater" and crashes the worker (ConsistencyError) on the first rebalance that keeps
   a partition with local state.
   -> `OutbidConsumerThread._highwaters` asks the broker (ListOffsets under read_committed = LSO).
6. With transactions, a changelog partition ends in a commit marker, which is never delivered,
   so recovery never "reaches" the highwater; Faust notices only after two idle 5 s waits
   (Recovery._slurp_changelogs -> detect_aborted_tx). Every rebalance then costs >= 10 s.
   -> `_FastIdleAsyncio` shortens that idle wait to RECOVERY_IDLE_S inside faust.tables.recovery.
7. That idle check (detect_aborted_tx) ends a partition's recovery as soon as the consumer
   *position* has reached the highwater, and sets its recovery offset to the highwater. The
   position moves when aiokafka hands records to Faust, not when recovery applies them: records
   still between the consumer thread and the changelog queue (or in the queue) are then skipped
   as "already seen", and the partition starts processing with stale state (a seq taken twice).
   The idle counter is never reset between recoveries, so after any rebalance the first idle
   tick already qualifies. The same bump, on records dropped by a revoke, is kept in memory into
   the next recovery when the partition's database has no offset yet (seek past everything).
   And a recovery that finishes between a revoke and the next assignment resumes the flow in the
   middle of the rebalance.
   -> `OutbidConsumerThread` remembers the last changelog record handed to Faust since each
   seek, and the position recovery sees is "taken in through": the real position only once
   every handed record has been dequeued by recovery (and the closing marker consumed).
   `OutbidRecovery` starts each partition from what its database holds, and abandons a recovery
   at the first await after a revoke.
8. At a revoke Faust drops its acked offsets of the revoked partitions and then finds nothing to
   commit, so the records processed since the last commit stay in open transactions; a kept
   partition is sought back and re-processes them into the same transaction (duplicates).
   -> `on_partitions_revoked` commits the processed records' outputs with their offsets first.
9. aiokafka fails a produce batch that meets a non-retriable error (the batch's futures get the
   exception) without marking the transaction as failed, so `commit_transaction` still commits:
   the consumed offsets become permanent while the failed records (events, changelog records)
   are gone. Java's client had the same defect (KAFKA-5385). Faust only logs the failed future.
   -> `OutbidTransactionManager` records every failed send per transaction, waits for the
   transaction's sends before committing, and stops the worker instead of committing one that
   lost a record (its transaction is then aborted and the records are re-processed).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, cast

import faust.tables.manager as faust_tables_manager
import faust.tables.recovery as faust_recovery
import faust.transport.producer as faust_producer
from faust.streams import current_event
from faust.transport.consumer import TransactionManager
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from app.errors import ConfigurationError, PartitionRevokedError

log = logging.getLogger(__name__)


class ProcessingGate:
    """Serialises "process one message" against "commit a transaction" within one worker."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.done: dict[
            TP, int
        ] = {}  # next offset to consume, per source partition fully processed

        self.revocations = 0  # bumped on every revoke: a record that straddles one is not "done"

    @contextlib.asynccontextmanager
    async def processing(self, tp: TP, offset: int) -> AsyncIterator[None]:
        async with self.lock:
            revocations = self.revocations
            yield
            if revocations == self.revocations:
                self.done[tp] = offset + 1

    def forget(self, tps: set[TP]) -> None:
        self.revocations += 1
        for tp in tps:
            self.done.pop(tp, None)


GATE = ProcessingGate()
# Fix 9: transactional id -> the first send of its open transaction that failed.
SEND_FAILURES: dict[str, BaseException] = {}


class TransactionOutputLostError(RuntimeError):
    """A record sent in a transaction failed: committing would lose it (the worker stops)."""


def _note_send(tid: str, future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        SEND_FAILURES.setdefault(tid, cast(BaseException, future.exception()))


# Called as hook(app, committed_offsets) after every successful commit, still under the gate:
# the moment the committed partitions hold only committed state (table snapshots use it).
COMMIT_HOOKS: list[Callable[[Any, Mapping[TP, int]], None]] = []


class TrackingProducerBuffer(faust_producer.ProducerBuffer):
    """Faust's table-write buffer with a larger cap (stock: 100) and a "all sent" barrier."""

    max_messages = 10_000  # the stock 100 blocks every inbound message once 100 writes queue up

    def __post_init__(self) -> None:
        super().__post_init__()
        self._unsent: set[asyncio.Future[Any]] = set()

    def put(self, fut: Any) -> None:  # a FutureMessage (an asyncio.Future)
        self._unsent.add(fut)
        fut.add_done_callback(self._unsent.discard)
        super().put(fut)

    async def wait_sent(self) -> None:
        pending = list(self._unsent)
        if pending:  # failures were logged where they happened; this is only a barrier
            await asyncio.gather(*pending, return_exceptions=True)


class OutbidTransactionManager(TransactionManager):
    """Transactions keyed by the source partition; commits gated and complete (see module doc)."""

    track_sends = True  # fix 9 (OUTBID_DISABLE_FIXES=send_failures turns it off)

    def _tid(self, topic: str, partition: int) -> str:
        return f"{self.app.conf.id}-{self.app.assignor.group_for_topic(topic)}-{partition}"

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
        *,
        transactional_id: str | None = None,  # noqa: ARG002 - chosen here instead
    ) -> Any:
        p = self.consumer.key_partition(topic, key, partition)
        event = current_event()
        producer: Any = self.producer
        transactional = event is not None or (
            p is not None and topic in self.app.tables.changelog_topics
        )
        tid = None
        if transactional:
            # In an event: the transaction of the record's source partition. A buffered table
            # write (sent later from Faust's buffer task, outside the event): its changelog
            # partition is the source partition, so the same transaction.
            source: tuple[str, int] = (
                (event.message.topic, event.message.partition)
                if event is not None
                else (topic, p or 0)
            )
            with contextlib.suppress(KeyError):  # the assignor forgot the topic: a rebalance
                tid = self._tid(*source)
            if tid is None or tid not in producer._transaction_producers:
                # The partition was revoked while its record was being processed. Sending
                # outside a transaction would make this output permanent while the record is
                # re-processed by the partition's next owner: a duplicate. Never do that.
                revoked = PartitionRevokedError(
                    f"{tid or source} has no transaction; {topic}[{p}] not sent"
                )
                if event is not None:
                    raise revoked  # the agent drops the record; its next owner re-processes it
                # A buffered table write: fail its future (raising would kill Faust's buffer task).
                failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                failed.set_exception(revoked)
                return failed
        # Anything else outside an event (a web view producing a command) is not part of any
        # consume-process-produce cycle: inside a transaction it would stay invisible until that
        # partition next commits, which an idle partition never does.
        sent = await self.producer.send(
            topic, key, value, p, timestamp, headers, transactional_id=tid
        )
        if tid is not None and self.track_sends and isinstance(sent, asyncio.Future):
            sent.add_done_callback(functools.partial(_note_send, tid))
        return sent

    async def commit(
        self,
        offsets: Mapping[TP, int],
        start_new_transaction: bool = True,
        *,
        assigned_only: bool = True,  # False at revoke time: the partitions are leaving
    ) -> bool:
        app: Any = (
            self.app
        )  # private Faust attributes below (_pending_persisted_offsets) are untyped
        producer: Any = self.producer
        async with GATE.lock:
            buffer = app.producer.buffer
            if isinstance(buffer, TrackingProducerBuffer):
                await buffer.wait_sent()
            live = self._live_transactions(offsets, assigned_only=assigned_only)
            if not live:
                return False
            if self.track_sends and not await self._sends_delivered(live):
                return False
            persisted = dict(app.tables._pending_persisted_offsets)
            try:
                await producer.commit_transactions(
                    live, app.conf.id, start_new_transaction=start_new_transaction
                )
            except Exception as exc:  # a failed commit must not look committed: stop the worker
                log.exception("transaction commit failed; crashing so the group re-balances")
                await app.crash(exc)
                return False
            for ctp, (store, off) in persisted.items():
                with contextlib.suppress(KeyError):
                    if self._tid(ctp.topic, ctp.partition) in live:
                        store.set_persisted_offset(ctp, off)
                        if app.tables._pending_persisted_offsets.get(ctp) == (store, off):
                            del app.tables._pending_persisted_offsets[ctp]
            committed = {tp: off for tps in live.values() for tp, off in tps.items()}
            for hook in COMMIT_HOOKS:
                try:
                    hook(app, committed)
                except Exception:  # a hook (a snapshot) must never fail a committed transaction
                    log.exception("commit hook %r failed", hook)
            return True

    def _live_transactions(
        self, offsets: Mapping[TP, int], *, assigned_only: bool
    ) -> dict[str, dict[TP, int]]:
        """The offsets to commit, by the transaction they belong to (open transactions only)."""
        app: Any = self.app
        producer: Any = self.producer
        assigned = app.consumer.assignment() if assigned_only else set(offsets)
        merged = {tp: off for tp, off in offsets.items() if tp in assigned}
        for tp, off in GATE.done.items():
            if tp in assigned and off > merged.get(tp, -1):
                merged[tp] = off
        by_tid: dict[str, dict[TP, int]] = defaultdict(dict)
        for tp, off in merged.items():
            with contextlib.suppress(KeyError):
                by_tid[self._tid(tp.topic, tp.partition)][tp] = off
        live = {t: o for t, o in by_tid.items() if t in producer._transaction_producers}
        if not assigned_only:  # at a revoke: Faust may have ended some of them already
            live = {t: o for t, o in live.items() if _in_transaction(producer, t)}
        return live

    async def _sends_delivered(self, live: Mapping[str, Any]) -> bool:
        """Fix 9: wait for each transaction's sends; False (worker stopping) if one failed."""
        producer: Any = self.producer
        for tid in live:
            txn_producer = producer._transaction_producers.get(tid)
            if txn_producer is not None:
                with contextlib.suppress(Exception):  # a failure is what SEND_FAILURES holds
                    await txn_producer.flush()
        lost = {tid: SEND_FAILURES[tid] for tid in live if tid in SEND_FAILURES}
        if not lost:
            return True
        error = TransactionOutputLostError(
            f"records of transaction(s) {sorted(lost)} were not written "
            f"({next(iter(lost.values()))!r}): not committing them; stopping so the partitions "
            "are re-processed from their committed offsets"
        )
        log.error("%s", error)
        await self.app.crash(error)
        return False

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        # Fix 8: Faust clears its acked offsets of revoked partitions *before* its revoke-time
        # commit, finds nothing to commit and skips it. The transactions keep the outputs of
        # records processed since the last commit; a partition this worker keeps through the
        # (eager) rebalance keeps that open transaction, is sought back to the old committed
        # offset, re-processes those records into the same transaction, and the next commit
        # makes both copies visible (seen: dead letters written twice in a 100k chaos run).
        # So commit what was processed, with its offsets, before forgetting it.
        done = {tp: offset for tp, offset in GATE.done.items() if tp in revoked}
        if done:
            await self.commit(done, start_new_transaction=True, assigned_only=False)
        GATE.forget(revoked)
        for tp in revoked:  # their transactions end here (committed above, or aborted)
            with contextlib.suppress(KeyError):
                SEND_FAILURES.pop(self._tid(tp.topic, tp.partition), None)
        await super().on_partitions_revoked(revoked)


def _in_transaction(producer: Any, tid: str) -> bool:
    """Whether `tid`'s producer has an open transaction (committing one that has not fails)."""
    txn = getattr(producer._transaction_producers.get(tid), "_txn_manager", None)
    return txn is None or bool(txn.is_in_transaction())


class OutbidConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def __post_init__(self) -> None:
        super().__post_init__()
        # Offset of the last changelog record handed to Faust since that partition's last seek.
        # Written on the consumer thread, read on the event loop (single dict ops: GIL-atomic).
        self._handed: dict[TP, int] = {}

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        # end_offsets honours the consumer's isolation level: read_committed -> last stable offset.
        consumer: Any = self._ensure_consumer()
        return cast(Mapping[TP, int], await consumer.end_offsets(partitions))

    async def _fetch_records(
        self,
        consumer: Any,
        active_partitions: Any,
        timeout: float | None = None,  # noqa: ASYNC109 - Faust's own signature
        max_records: int | None = None,
    ) -> Any:
        records = await super()._fetch_records(
            consumer, active_partitions, timeout=timeout, max_records=max_records
        )
        # No await between aiokafka advancing the position (inside fetched_records) and this
        # bookkeeping: a position() served on this thread sees both or neither.
        changelogs = self.app.tables.changelog_topics
        for tp, batch in records.items():
            if batch and tp.topic in changelogs:
                self._handed[TP(tp.topic, tp.partition)] = batch[-1].offset
        return records

    async def _seek_wait(self, consumer: Any, partitions: Mapping[TP, int]) -> None:
        for tp in partitions:  # before the seek (synchronous in super): records after it count
            self._handed.pop(TP(tp.topic, tp.partition), None)
        await super()._seek_wait(consumer, partitions)

    async def position(self, tp: TP) -> int | None:
        """Faust calls this only from table recovery's end-of-changelog check (fix 7)."""
        position = await super().position(tp)
        recovery = cast(Any, self.app.tables).recovery
        if position is None or not isinstance(recovery, OutbidRecovery):
            return position
        return recovery.taken_in_through(TP(tp.topic, tp.partition), position, self._handed)


class OutbidRecovery(faust_recovery.Recovery):
    """Faust's table recovery that ends a partition only when all of it was applied (fix 7)."""

    _rebalances_at_start = 0

    def taken_in_through(self, tp: TP, position: int, handed: Mapping[TP, int]) -> int:
        """What detect_aborted_tx compares to the highwater (LSO - 1) instead of the position.

        While a record handed to Faust has not been dequeued here yet, it is the offset recovery
        has reached (below the highwater there, so no jump). Once all are: position - 1, so the
        jump needs the record *at* the highwater (normally the closing commit marker) consumed.
        """
        reached = [
            o for o in (self.active_offsets.get(tp), self.standby_offsets.get(tp)) if o is not None
        ]
        taken = max(reached) if reached else -1
        last = handed.get(tp)
        if last is not None and taken < last:
            return taken
        return position - 1

    def _add(self, table: Any, tp: TP, offsets: Any) -> None:
        # Stock keeps an in-memory offset when the database has none: that offset may have been
        # bumped to a highwater whose records never reached the database. The database decides.
        self.tp_to_table[tp] = table
        offsets[tp] = table.persisted_offset(tp)

    async def on_rebalance(
        self,
        assigned: set[TP],
        revoked: set[TP],
        newly_assigned: set[TP],
        generation_id: int = 0,
    ) -> None:
        self._rebalances_at_start = self.app.rebalancing_count
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)

    async def _wait(self, coro: Any, timeout: Any = None) -> None:  # noqa: ASYNC109 - Faust's
        await super()._wait(coro, timeout=timeout)
        # A revoke since this recovery's assignment: its generation is over. Stock only notices
        # at the next assignment, and may meanwhile resume partitions and the flow.
        if self.app.rebalancing_count != self._rebalances_at_start:
            raise faust_recovery.RebalanceAgain()


class OutbidProducer(faust_aiokafka.Producer):
    """Idempotent producer in every mode (Faust only enables it under exactly_once)."""

    def _settings_extra(self) -> Mapping[str, Any]:
        return {
            "acks": "all",
            "enable_idempotence": True,
            # aiokafka's 60 s default: a partition kept through a long rebalance stall has its
            # open transaction aborted by the broker while the worker's RocksDB keeps the
            # aborted writes (seen in the chaos run: lost AuctionOpened events). Stay below the
            # broker's transaction.max.timeout.ms (15 min).
            "transaction_timeout_ms": TRANSACTION_TIMEOUT_MS,
            **super()._settings_extra(),
        }


# Fix 7 makes an early end-of-recovery check harmless, so the idle wait is only latency: every
# recovery ends with one (the closing commit marker is never delivered as a record).
RECOVERY_IDLE_S = 0.25
TRANSACTION_TIMEOUT_MS = 300_000


class _FastIdleAsyncio:
    """`asyncio` for faust.tables.recovery, whose 5 s idle wait is the only wait_for there."""

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    @staticmethod
    async def wait_for(awaitable: Any, timeout: float | None) -> Any:  # noqa: ASYNC109 - asyncio's own signature
        if timeout is not None:
            timeout = min(timeout, RECOVERY_IDLE_S)
        return await asyncio.wait_for(awaitable, timeout)


FIXES = (
    "buffer",
    "transactions",
    "highwater",
    "recovery_idle",
    "recovery_applied",
    "send_failures",
)


def install(disabled: frozenset[str] = frozenset()) -> None:
    """Swap the fixed classes in; must run before the Faust App is created.

    `disabled` leaves named fixes out (OUTBID_DISABLE_FIXES), so tests can show each defect.
    """
    unknown = disabled - set(FIXES)
    if unknown:
        raise ConfigurationError(
            f"OUTBID_DISABLE_FIXES names unknown fix(es) {sorted(unknown)}; known: {', '.join(FIXES)}"
        )
    # Module globals and class attributes that Faust looks up when it builds each object.
    patches: list[tuple[str, object, str, object]] = [
        ("buffer", faust_producer, "ProducerBuffer", TrackingProducerBuffer),  # Producer.__init__
        ("transactions", faust_aiokafka.Transport, "TransactionManager", OutbidTransactionManager),
        ("transactions", faust_aiokafka.Transport, "Producer", OutbidProducer),
        ("highwater", faust_aiokafka, "AIOKafkaConsumerThread", OutbidConsumerThread),
        ("recovery_idle", faust_recovery, "asyncio", _FastIdleAsyncio()),  # Recovery idle wait
        ("recovery_applied", faust_tables_manager, "Recovery", OutbidRecovery),  # TableManager
    ]
    OutbidTransactionManager.track_sends = "send_failures" not in disabled
    for fix, target, name, replacement in patches:
        if fix in disabled:
            log.warning(
                "faust fix %r disabled (OUTBID_DISABLE_FIXES): known-broken behaviour ahead", fix
            )
            continue
        setattr(target, name, replacement)
