"""The worker freezes its start-up objects: full collections stop walking them."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from app.engine.service import freeze_startup_objects


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()  # the rest of the test session collects as before


@pytest.mark.usefixtures("unfrozen")
def test_objects_alive_at_start_leave_the_collected_generations() -> None:
    kept = [[n] for n in range(1_000)]  # containers: tracked by the collector
    assert gc.get_freeze_count() == 0
    frozen = freeze_startup_objects()
    assert frozen == gc.get_freeze_count() >= len(kept)
    assert sum(len(gc.get_objects(generation)) for generation in range(3)) < frozen
    assert not any(o is kept[0] for o in gc.get_objects(2))  # a full pass no longer visits it


class _Node:
    other: object = None


@pytest.mark.usefixtures("unfrozen")
def test_garbage_at_start_is_collected_not_frozen() -> None:
    node = _Node()
    node.other = node  # a cycle: only the collector can free it
    gone = weakref.ref(node)
    del node
    freeze_startup_objects()
    assert gone() is None  # frozen, it would have lived as long as the process
