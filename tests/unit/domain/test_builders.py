"""slot_builder: the same objects as the dataclass constructors, and only where that holds."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import FrozenInstanceError, InitVar, dataclass, field
from datetime import UTC, datetime

import pytest

from app.domain.auction import AuctionState, AuctionStatus
from app.domain.builders import slot_builder
from app.domain.commands import CloseAuction, OpenAuction, PlaceBid
from app.domain.events import (
    AuctionClosed,
    AuctionOpened,
    BidAccepted,
    BidRejected,
    BidRejectionReason,
    CloseReason,
    CommandRejected,
    CommandRejectionReason,
)
from app.domain.highest_bid import HighestBid

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

SAMPLES: list[tuple[type, tuple[object, ...]]] = [
    (OpenAuction, ("c", T0, "a", "s", 0, 1, "EUR", T0)),
    (PlaceBid, ("c", T0, "a", "u", 5, "EUR")),
    (CloseAuction, ("c", T0, "a")),
    (AuctionOpened, ("a", 1, "e", "c", T0, "s", 0, 1, "EUR", T0)),
    (BidAccepted, ("a", 2, "e", "c", T0, "u", 5, "EUR")),
    (BidRejected, ("a", 2, "e", "c", T0, "u", 5, "EUR", BidRejectionReason.TOO_LOW)),
    (AuctionClosed, ("a", 3, "e", "c", T0, None, None, CloseReason.EXPLICIT)),
    (
        CommandRejected,
        ("a", 3, "e", "c", T0, "CloseAuction", CommandRejectionReason.ALREADY_CLOSED),
    ),
    (AuctionState, ("a", 1, AuctionStatus.OPEN, "s", 0, 1, "EUR", T0, 5, "u", 1, ("c",))),
    (HighestBid, ("a", AuctionStatus.OPEN, 5, "u", "c", "EUR", T0, 2, T0, 1, None, None)),
]


@pytest.mark.parametrize(("kind", "values"), SAMPLES, ids=lambda s: getattr(s, "__name__", ""))
def test_a_built_object_equals_the_constructed_one_and_is_as_frozen(
    kind: type, values: tuple[object, ...]
) -> None:
    built = slot_builder(kind)(*values)

    assert type(built) is kind
    assert built == kind(*values)
    assert hash(built) == hash(kind(*values))
    with pytest.raises(FrozenInstanceError):
        setattr(built, dataclasses.fields(built)[0].name, "changed")


@pytest.mark.parametrize(("kind", "values"), SAMPLES, ids=lambda s: getattr(s, "__name__", ""))
def test_a_builder_takes_the_constructors_parameters(
    kind: type, values: tuple[object, ...]
) -> None:
    def parameters(function: object) -> list[tuple[str, object, object]]:
        signature = inspect.signature(function)  # type: ignore[arg-type]
        return [(p.name, p.kind, p.default) for p in signature.parameters.values()]

    assert parameters(slot_builder(kind)) == parameters(kind)


def test_defaults_and_keywords_work_as_in_the_constructor() -> None:
    build = slot_builder(AuctionState)

    assert build("a-1") == AuctionState.empty("a-1")
    assert build("a-1", bid_count=3) == AuctionState("a-1", bid_count=3)


@dataclass(frozen=True)
class _NotSlotted:
    x: int


@dataclass(frozen=True, slots=True)
class _PostInit:
    x: int

    def __post_init__(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class _WithInitVar:
    x: int
    scale: InitVar[int]


@dataclass(frozen=True, slots=True)
class _WithFactory:
    x: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _NotInInit:
    x: int
    y: int = field(init=False, default=0)


class _Plain:
    __slots__ = ("x",)


@pytest.mark.parametrize(
    "kind", [_NotSlotted, _PostInit, _WithInitVar, _WithFactory, _NotInInit, _Plain]
)
def test_what_a_builder_could_build_differently_is_refused(kind: type) -> None:
    with pytest.raises(TypeError):
        slot_builder(kind)


def test_only_dataclasses_are_accepted() -> None:
    assert not dataclasses.is_dataclass(_Plain)
    with pytest.raises(TypeError, match="not a dataclass"):
        slot_builder(_Plain)
