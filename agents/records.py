"""What a step reads and what it asks to write: engine-neutral records."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from app.topics import spec as topics

if TYPE_CHECKING:
    from app.domain import AuctionState, Event

Headers = list[tuple[str, str | bytes | None]]  # confluent-kafka's produce() type


@dataclass(frozen=True, slots=True)
class Incoming:
    """One record as consumed: where it came from, and its raw key and value (either may be None)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class Outcome(StrEnum):
    """What happened to a command; the `outcome` label of outbid_commands_total."""

    DECIDED = "decided"
    DUPLICATE = "duplicate"  # its command id was already decided: nothing to write
    REROUTED = "rerouted"  # re-sent under its auction's key, decided there
    DEAD_LETTER = "dead_letter"


class Destination(StrEnum):
    """Where an output goes: topics.yaml names (the engine applies the topic prefix)."""

    EVENTS = topics.EVENTS
    COMMANDS = topics.COMMANDS
    DLQ = topics.DLQ


@dataclass(frozen=True, slots=True)
class Output:
    """One record to write in the input record's transaction."""

    destination: Destination
    key: bytes | None
    value: bytes | None
    headers: Headers = field(default_factory=list)
    partition: int | None = None  # None: Kafka's partitioner places it by key
    # An aggregate snapshot of this state is due once this record's offset is known
    # (app/snapshots/aggregates.py: a snapshot names the offset of its last event).
    snapshot: AuctionState | None = None


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    outputs: tuple[Output, ...] = ()
    events: tuple[Event, ...] = ()
    reason: str | None = None  # dead letters: the reason code
