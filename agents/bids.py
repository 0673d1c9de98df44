"""The command handler: one command record against its auction's state -> decision events.

decode -> (re-route when the record's key is not its auction id) -> decide -> evolve.
Pure: the caller hands in the auction's state and gets back the events and the new state.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from datetime import datetime

from agents.records import Destination, Incoming, Output
from app import headers
from app.domain import AuctionState, Command, Event, decide, decode_command, evolve


@dataclass(frozen=True, slots=True)
class Decision:
    events: list[Event]
    state: AuctionState  # after the events (the same object when there are none)


def decode(record: Incoming) -> Command:
    """The command in the record; raises InvalidMessage (with its reason) when there is none."""
    return decode_command(record.value if record.value is not None else b"")


def misrouted(record: Incoming, command: Command) -> Output | None:
    """The record re-sent under its auction's key when it arrived under another key, else None.

    Typed into a console producer without a key, or with a wrong one: it goes to the partition
    that owns the auction and is decided there, in that partition's order.
    """
    key = command.auction_id.encode()
    if record.key == key:
        return None
    source = f"{record.topic}/{record.partition}/{record.offset}".encode()
    return Output(
        Destination.COMMANDS, key, record.value, [(headers.REROUTED_FROM, source)], partition=None
    )


def handle(
    state: AuctionState,
    command: Command,
    now: datetime,
    *,
    max_recent: int,
    seen: Container[str] | None = None,
) -> Decision:
    """Decide `command` against `state` and fold its events in (no events: a duplicate).
    `seen`: the ids of state.recent_command_ids as a set (see app.domain.decide)."""
    events = decide(state, command, now, max_recent=max_recent, seen=seen)
    for event in events:
        state = evolve(state, event, max_recent=max_recent)
    return Decision(events, state)
