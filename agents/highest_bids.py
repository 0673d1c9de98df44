"""The highest-bid projection: fold decision events into the auction's view.

`apply` ignores an event whose seq the view has already seen, so a replay changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from app.domain import Event, HighestBid, apply


def project(view: HighestBid | None, events: Iterable[Event]) -> HighestBid | None:
    for event in events:
        view = apply(view, event)
    return view
