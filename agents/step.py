"""One step: a command record and its partition's state in, the records to write out.

decode -> re-route -> decide -> evolve -> project (highest bid, bids per minute) -> outputs.

The step changes the auction's `Entry` (the open transaction's view of its state, held by the
partition's tables) and returns the event, re-route and dead-letter records; the table changes
are written by the tables at commit, once per auction per transaction. It never raises for
anything a producer can send: what cannot be processed becomes a dead letter with its reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from agents import bid_rate, bids, highest_bids
from agents.bid_rate import BidRate
from agents.dead_letters import dead_letter
from agents.records import Destination, Headers, Incoming, Outcome, Output, Result
from app import headers
from app.domain import AuctionState, HighestBid, encode_event, follow_recent
from app.errors import InvalidMessage
from app.snapshots import aggregates as aggregate_snapshots

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Entry:
    """One auction as the open transaction sees it."""

    state: AuctionState
    view: HighestBid | None
    rate: BidRate | None
    issued_at: float | None = None  # of the newest command decided for it in this transaction
    changed: bool = False  # events were decided for it in this transaction
    # the ids of state.recent_command_ids, for an O(1) duplicate check (built on first use)
    seen: set[str] | None = None


class PartitionState(Protocol):
    def entry(self, key: bytes, auction_id: str) -> Entry:
        """The auction's entry in the open transaction (created empty on first use)."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class CommandStep:
    def __init__(
        self,
        *,
        max_recent: int,
        snapshot_every: int = 0,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.max_recent = max_recent
        self.snapshot_every = snapshot_every  # aggregate snapshots every N events (0: never)
        self.clock = clock

    def __call__(self, tables: PartitionState, record: Incoming) -> Result:
        try:
            command = bids.decode(record)
        except InvalidMessage as exc:
            return dead_letter(record, exc.reason, exc.message)
        rerouted = bids.misrouted(record, command)
        if rerouted is not None:
            return Result(Outcome.REROUTED, (rerouted,))
        key = command.auction_id.encode()
        entry = tables.entry(key, command.auction_id)
        seen = entry.seen
        if seen is None:
            seen = entry.seen = set(entry.state.recent_command_ids)
        try:
            decision = bids.handle(
                entry.state, command, self.clock(), max_recent=self.max_recent, seen=seen
            )
            view = highest_bids.project(entry.view, decision.events)
            rate = bid_rate.count(entry.rate, decision.events)
        except Exception as exc:  # a bug or a poison record: park it, the partition moves on
            log.exception(
                "command at %s[%s]@%s failed", record.topic, record.partition, record.offset
            )
            return dead_letter(record, "handler_error", repr(exc))
        if not decision.events:
            return Result(Outcome.DUPLICATE)
        snapshot_due = aggregate_snapshots.due(
            entry.state.version, decision.state.version, self.snapshot_every
        )
        issued = command.issued_at.timestamp()
        stamp: Headers = [(headers.ISSUED_AT, str(issued).encode())]
        last = len(decision.events) - 1
        outputs = tuple(
            Output(
                Destination.EVENTS,
                key,
                encode_event(event),
                stamp,
                partition=record.partition,  # co-partitioned: the auction's events stay with it
                snapshot=decision.state if snapshot_due and index == last else None,
            )
            for index, event in enumerate(decision.events)
        )
        entry.seen = follow_recent(
            seen, entry.state.recent_command_ids, decision.state.recent_command_ids
        )
        entry.state, entry.view, entry.rate = decision.state, view, rate
        entry.issued_at, entry.changed = issued, True
        return Result(Outcome.DECIDED, outputs, tuple(decision.events))
