"""The command handler: bid-commands -> decide against the auction aggregate -> auction-events.

decode -> (re-route if the key disagrees) -> load -> decide -> append events -> store state.
Runs under the ProcessingGate, so a command's events, its state change and its offset commit
share one Kafka transaction (see app/eos.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import faust

from agents.dead_letters import DeadLetters
from agents.processing import process_stream
from app import headers, metrics
from app.domain import (
    AuctionState,
    decide,
    decode_command,
    decode_state,
    encode_event,
    encode_state,
    evolve,
)
from app.errors import InvalidMessage
from app.snapshots import aggregates as aggregate_snapshots
from app.topology import Topology

log = logging.getLogger(__name__)
REROUTED_FROM = headers.REROUTED_FROM
ISSUED_AT_HEADER = headers.ISSUED_AT


def utc_now() -> datetime:
    return datetime.now(UTC)


class CommandHandler:
    def __init__(
        self,
        topology: Topology,
        auctions: Any,
        dead_letters: DeadLetters,
        *,
        max_recent: int,
        snapshot_every: int = 0,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.topology = topology
        self.auctions = auctions
        self.dead_letters = dead_letters
        self.max_recent = max_recent
        self.snapshot_every = snapshot_every
        self.clock = clock

    async def handle(self, message: Any) -> str:
        """Decide one command; returns the outcome ("decided", "duplicate", "rerouted", "dead_letter")."""
        try:
            command = decode_command(message.value if message.value is not None else b"")
        except InvalidMessage as exc:
            await self.dead_letters.park(message, exc.reason, exc.message)
            metrics.COMMANDS.labels("dead_letter").inc()
            return "dead_letter"
        key = command.auction_id.encode()
        if message.key != key:
            # Typed into a console producer without a key, or with a wrong one: send it to the
            # partition that owns the auction; it is decided there, in that partition's order.
            source = f"{message.topic}/{message.partition}/{message.offset}".encode()
            await self.topology.commands.send(
                key=key, value=message.value, headers=[(REROUTED_FROM, source)]
            )
            return "rerouted"
        stored = self.auctions.get(key)
        state = (
            decode_state(stored) if stored is not None else AuctionState.empty(command.auction_id)
        )
        events = decide(state, command, self.clock(), max_recent=self.max_recent)
        if not events:
            metrics.COMMANDS.labels("duplicate").inc()
            return "duplicate"
        before = state.version
        for event in events:
            sent = await self.topology.events.send(
                key=key,
                value=encode_event(event),
                # lets the projection measure command -> projection latency without decoding more
                headers=[(ISSUED_AT_HEADER, str(command.issued_at.timestamp()).encode())],
            )
            state = evolve(state, event, max_recent=self.max_recent)
        self.auctions[key] = encode_state(state)
        if aggregate_snapshots.due(before, state.version, self.snapshot_every):
            # Same transaction as the events; the offset is known once the broker has the batch.
            written = await sent
            await self.topology.snapshots.send(
                key=key, value=aggregate_snapshots.encode(state, written.partition, written.offset)
            )
            metrics.AGGREGATE_SNAPSHOTS.inc()
        metrics.COMMANDS.labels("decided").inc()
        for event in events:
            metrics.EVENTS.labels(event.TYPE).inc()
        metrics.COMMAND_TO_EVENT.observe(
            max(0.0, (events[-1].occurred_at - command.issued_at).total_seconds())
        )
        return "decided"


def register(
    app: faust.App, topology: Topology, auctions: Any, max_recent: int, snapshot_every: int
) -> Any:
    dead_letters = DeadLetters(topology.dead_letters)
    handler = CommandHandler(
        topology, auctions, dead_letters, max_recent=max_recent, snapshot_every=snapshot_every
    )

    @app.agent(topology.commands, name="decide-commands")
    async def decide_commands(stream: Any) -> None:
        await process_stream(app, stream, handler.handle, dead_letters)

    return decide_commands
