"""What the open transaction holds besides the records already handed to the producer."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from app.domain import AuctionState
from tables.partition import Changes


@dataclass(frozen=True, slots=True)
class PendingSnapshot:
    """An aggregate snapshot taken at decision time, written once its last event's offset is
    known (`where` is filled by that event's delivery report)."""

    key: bytes
    state: AuctionState
    partition: int
    where: list[int]


@dataclass
class Transaction:
    started: float = 0.0
    positions: dict[int, int] = field(default_factory=dict)  # commands partition -> next offset
    snapshots: list[PendingSnapshot] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)
    # partition -> its tables' changes, produced to the changelogs at commit
    changes: dict[int, Changes] = field(default_factory=dict)
    # (table, partition) -> offset of its last changelog record (from its delivery report)
    changelog_end: dict[tuple[str, int], int] = field(default_factory=dict)

    @property
    def open(self) -> bool:
        return bool(self.started)

    def begin(self) -> None:
        self.started = time.monotonic()

    def age(self) -> float:
        return time.monotonic() - self.started
