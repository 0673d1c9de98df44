"""Upgrade stored events, one schema version at a time, to the current shape.

Old events stay on the topic as they were written; `decode_event` runs them
through this chain before reading them. Each step is a pure function from the
payload of version N to that of version N + 1 and is registered in `UPCASTERS`
under N. A payload newer than CURRENT_SCHEMA_VERSION is refused: a worker that
is older than the data must not guess.

History
- v1: BidAccepted and BidRejected named the bidder "bidder" and nested the
  money as "price": {"amount": <minor units>, "currency": "EUR"}.
- v2 (current): they carry flat "bidder_id", "amount", "currency" like the
  commands do. The other events did not change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Final

from app.domain.events import CURRENT_SCHEMA_VERSION
from app.errors import InvalidMessage, InvalidReason

Payload = dict[str, object]
Upcaster = Callable[[Payload], Payload]


def _bid_v1_to_v2(payload: Payload) -> Payload:
    """Rename "bidder" -> "bidder_id" and flatten "price" into "amount" and "currency"."""
    if payload.get("type") not in ("BidAccepted", "BidRejected"):
        return {**payload, "schema_version": 2}
    price = _require(payload, "price")
    if not isinstance(price, dict):
        raise InvalidMessage(
            InvalidReason.WRONG_TYPE,
            'v1 field "price" must be an object {"amount": <int>, "currency": "<ISO code>"}',
            "price",
        )
    upgraded = {k: v for k, v in payload.items() if k not in ("bidder", "price")}
    upgraded["bidder_id"] = _require(payload, "bidder")
    upgraded["amount"] = _require(price, "amount", path="price.")
    upgraded["currency"] = _require(price, "currency", path="price.")
    upgraded["schema_version"] = 2
    return upgraded


UPCASTERS: Final[Mapping[int, Upcaster]] = MappingProxyType({1: _bid_v1_to_v2})


def upcast(payload: Payload, version: int) -> Payload:
    """`payload`, written at schema `version`, in the current shape (a new dict)."""
    if not 1 <= version <= CURRENT_SCHEMA_VERSION:
        raise InvalidMessage(
            InvalidReason.UNSUPPORTED_SCHEMA_VERSION,
            f"schema_version {version} is not supported (this worker reads 1.."
            f"{CURRENT_SCHEMA_VERSION}); upgrade the worker before it reads newer events",
            "schema_version",
        )
    while version < CURRENT_SCHEMA_VERSION:
        payload = UPCASTERS[version](payload)
        version += 1
    return payload


def _require(source: Mapping[str, object], key: str, *, path: str = "") -> object:
    if key not in source:
        raise InvalidMessage(
            InvalidReason.MISSING_FIELD,
            f'v1 event is missing "{path}{key}"; it cannot be upgraded',
            f"{path}{key}",
        )
    return source[key]
