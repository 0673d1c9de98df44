"""Old events, written as literal v1 bytes, still decode to today's events."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from app.domain.codec import decode_event, encode_event
from app.domain.events import (
    CURRENT_SCHEMA_VERSION,
    AuctionOpened,
    BidAccepted,
    BidRejected,
    BidRejectionReason,
)
from app.domain.upcasting import UPCASTERS, upcast
from app.errors import InvalidMessage, InvalidReason

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

V1_BID_ACCEPTED = (
    b'{"type":"BidAccepted","schema_version":1,"auction_id":"a-1","seq":2,'
    b'"event_id":"e-2","command_id":"c-2","occurred_at":"2024-05-01T12:00:00Z",'
    b'"bidder":"alice","price":{"amount":1500,"currency":"EUR"}}'
)
V1_BID_REJECTED = (
    b'{"type":"BidRejected","schema_version":1,"auction_id":"a-1","seq":3,'
    b'"event_id":"e-3","command_id":"c-3","occurred_at":"2024-05-01T12:00:00Z",'
    b'"bidder":"bob","price":{"amount":1501,"currency":"EUR"},"reason":"too_low"}'
)
V1_AUCTION_OPENED = (
    b'{"type":"AuctionOpened","schema_version":1,"auction_id":"a-1","seq":1,'
    b'"event_id":"e-1","command_id":"c-1","occurred_at":"2024-05-01T12:00:00Z",'
    b'"seller_id":"s-1","starting_price":1000,"min_increment":100,"currency":"EUR",'
    b'"closes_at":"2024-05-08T12:00:00Z"}'
)


def test_a_v1_bid_accepted_is_upgraded_to_flat_bidder_amount_and_currency() -> None:
    assert decode_event(V1_BID_ACCEPTED) == BidAccepted(
        "a-1", 2, "e-2", "c-2", T0, bidder_id="alice", amount=1500, currency="EUR"
    )


def test_a_v1_bid_rejected_keeps_its_reason() -> None:
    assert decode_event(V1_BID_REJECTED) == BidRejected(
        "a-1", 3, "e-3", "c-3", T0, "bob", 1501, "EUR", BidRejectionReason.TOO_LOW
    )


def test_a_v1_event_whose_shape_did_not_change_passes_through() -> None:
    event = decode_event(V1_AUCTION_OPENED)

    assert isinstance(event, AuctionOpened)
    assert (event.seller_id, event.starting_price, event.currency) == ("s-1", 1000, "EUR")


def test_re_encoding_an_upgraded_event_writes_the_current_version() -> None:
    payload = orjson.loads(encode_event(decode_event(V1_BID_ACCEPTED)))

    assert payload["schema_version"] == CURRENT_SCHEMA_VERSION == 2
    assert "price" not in payload
    assert "bidder" not in payload


@pytest.mark.parametrize("version", [0, -1, CURRENT_SCHEMA_VERSION + 1, 99])
def test_unknown_schema_versions_are_unsupported(version: int) -> None:
    data = V1_AUCTION_OPENED.replace(b'"schema_version":1', b'"schema_version":%d' % version)

    with pytest.raises(InvalidMessage) as caught:
        decode_event(data)

    assert caught.value.reason is InvalidReason.UNSUPPORTED_SCHEMA_VERSION
    assert "upgrade the worker" in caught.value.message


@pytest.mark.parametrize(
    ("old", "new", "reason", "field"),
    [
        (b'"price":{"amount":1500,"currency":"EUR"}', b'"x":1', "missing_field", "price"),
        (b'{"amount":1500,"currency":"EUR"}', b"1500", "wrong_type", "price"),
        (b'"amount":1500,', b"", "missing_field", "price.amount"),
        (b',"currency":"EUR"', b"", "missing_field", "price.currency"),
        (b'"bidder":"alice"', b'"bidder_id":"alice"', "missing_field", "bidder"),
        (b'"amount":1500', b'"amount":"1500"', "wrong_type", "amount"),
    ],
)
def test_a_defective_v1_bid_is_refused_with_a_precise_reason(
    old: bytes, new: bytes, reason: str, field: str
) -> None:
    data = V1_BID_ACCEPTED.replace(old, new)
    assert data != V1_BID_ACCEPTED

    with pytest.raises(InvalidMessage) as caught:
        decode_event(data)

    assert (caught.value.reason, caught.value.field) == (reason, field)


def test_the_chain_has_one_step_for_every_older_version() -> None:
    assert sorted(UPCASTERS) == list(range(1, CURRENT_SCHEMA_VERSION))


def test_upcasting_does_not_modify_its_input() -> None:
    payload = orjson.loads(V1_BID_ACCEPTED)
    before = orjson.loads(V1_BID_ACCEPTED)

    upgraded = upcast(payload, 1)

    assert payload == before
    assert upgraded["schema_version"] == 2


def test_a_current_payload_is_returned_as_is() -> None:
    payload = orjson.loads(encode_event(decode_event(V1_BID_ACCEPTED)))

    assert upcast(payload, CURRENT_SCHEMA_VERSION) == payload
