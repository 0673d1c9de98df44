"""The wire format: round-trips, and one precise InvalidMessage reason per defect."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from app.domain.auction import AuctionState, AuctionStatus, decide, evolve
from app.domain.codec import (
    MAX_AMOUNT,
    MAX_COMMAND_BYTES,
    decode_command,
    decode_event,
    decode_state,
    decode_view,
    encode_command,
    encode_event,
    encode_state,
    encode_view,
)
from app.domain.commands import CloseAuction, Command, OpenAuction, PlaceBid
from app.domain.events import (
    AuctionClosed,
    AuctionOpened,
    BidAccepted,
    BidRejected,
    BidRejectionReason,
    CloseReason,
    CommandRejected,
    CommandRejectionReason,
    Event,
)
from app.domain.highest_bid import HighestBid
from app.errors import InvalidMessage, InvalidReason, OutbidError

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CLOSES = datetime(2024, 5, 8, 12, 0, tzinfo=UTC)

PLACE_BID: dict[str, object] = {
    "type": "PlaceBid",
    "command_id": "c-42",
    "issued_at": "2024-05-01T12:00:00Z",
    "auction_id": "a-1",
    "bidder_id": "alice@example.com",
    "amount": 1500,
    "currency": "EUR",
}
OPEN_AUCTION: dict[str, object] = {
    "type": "OpenAuction",
    "command_id": "c-1",
    "issued_at": "2024-05-01T12:00:00Z",
    "auction_id": "a-1",
    "seller_id": "s-7",
    "starting_price": 1000,
    "min_increment": 50,
    "currency": "EUR",
    "closes_at": "2024-05-08T12:00:00Z",
}

COMMANDS: list[Command] = [
    OpenAuction("c-1", T0, "a-1", "s-7", 0, 1, "EUR", CLOSES),
    PlaceBid("c-2", T0, "a-1", "u:1", MAX_AMOUNT, "USD"),
    CloseAuction("c-3", T0 + timedelta(microseconds=250), "a-1"),
]
EVENTS: list[Event] = [
    AuctionOpened("a-1", 1, "e-1", "c-1", T0, "s-7", 1000, 50, "EUR", CLOSES),
    BidAccepted("a-1", 2, "e-2", "c-2", T0, "alice", 1500, "EUR"),
    BidRejected("a-1", 3, "e-3", "c-3", T0, "bob", 1500, "EUR", BidRejectionReason.TOO_LOW),
    AuctionClosed("a-1", 4, "e-4", "c-4", T0, "alice", 1500, CloseReason.EXPIRED),
    AuctionClosed("a-1", 4, "e-4", "c-4", T0, None, None, CloseReason.EXPLICIT),
    CommandRejected(
        "a-1", 5, "e-5", "c-5", T0, "CloseAuction", CommandRejectionReason.ALREADY_CLOSED
    ),
]


def raw(payload: dict[str, object], **changes: object) -> bytes:
    return orjson.dumps(payload | changes)


def without(payload: dict[str, object], key: str) -> bytes:
    return orjson.dumps({k: v for k, v in payload.items() if k != key})


def refused(data: bytes, reason: InvalidReason, field: str | None = None) -> InvalidMessage:
    with pytest.raises(InvalidMessage) as caught:
        decode_command(data)
    assert caught.value.reason == reason, str(caught.value)
    assert caught.value.field == field
    return caught.value


# --- commands: happy path ------------------------------------------------------


def test_a_place_bid_decodes_to_the_command_with_an_aware_utc_issued_at() -> None:
    assert decode_command(raw(PLACE_BID)) == PlaceBid(
        "c-42", T0, "a-1", "alice@example.com", 1500, "EUR"
    )


def test_an_open_auction_decodes_with_its_closing_time() -> None:
    command = decode_command(raw(OPEN_AUCTION))

    assert isinstance(command, OpenAuction)
    assert (command.starting_price, command.min_increment, command.closes_at) == (1000, 50, CLOSES)


def test_a_close_auction_needs_only_the_common_fields() -> None:
    data = orjson.dumps(
        {
            "type": "CloseAuction",
            "command_id": "c",
            "issued_at": "2024-05-01T12:00Z",
            "auction_id": "a",
        }
    )

    assert decode_command(data) == CloseAuction("c", T0, "a")


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: type(c).__name__)
def test_every_command_round_trips(command: Command) -> None:
    assert decode_command(encode_command(command)) == command


def test_encoded_commands_carry_the_type_and_z_timestamps() -> None:
    payload = orjson.loads(encode_command(COMMANDS[2]))

    assert payload == {
        "type": "CloseAuction",
        "command_id": "c-3",
        "issued_at": "2024-05-01T12:00:00.000250Z",
        "auction_id": "a-1",
    }


def test_unknown_extra_fields_are_ignored() -> None:
    data = raw(PLACE_BID, note={"from": "mobile"}, schema_version=9)

    assert isinstance(decode_command(data), PlaceBid)


def test_timestamps_with_other_offsets_are_converted_to_utc() -> None:
    command = decode_command(raw(PLACE_BID, issued_at="2024-05-01T14:00:00+02:00"))

    assert command.issued_at == T0
    assert command.issued_at.tzinfo is UTC


def test_zero_starting_price_is_allowed() -> None:
    command = decode_command(raw(OPEN_AUCTION, starting_price=0))

    assert isinstance(command, OpenAuction)
    assert command.starting_price == 0


def test_a_message_of_exactly_the_size_limit_is_accepted() -> None:
    base = raw(PLACE_BID, padding="")
    data = raw(PLACE_BID, padding="x" * (MAX_COMMAND_BYTES - len(base)))

    assert len(data) == MAX_COMMAND_BYTES
    assert isinstance(decode_command(data), PlaceBid)


# --- commands: every reason ------------------------------------------------------


def test_one_byte_over_the_size_limit_is_too_large() -> None:
    base = raw(PLACE_BID, padding="")
    refused(
        raw(PLACE_BID, padding="x" * (MAX_COMMAND_BYTES - len(base) + 1)), InvalidReason.TOO_LARGE
    )


def test_bytes_that_are_not_utf8_are_not_utf8() -> None:
    error = refused(b'{"type": "PlaceBid\xff"}', InvalidReason.NOT_UTF8)

    assert "UTF-8" in error.message


@pytest.mark.parametrize("data", [b"", b"{", b"{'a': 1}", b"NaN", b'{"a":1}x', b"\xef\xbb\xbf{}"])
def test_text_that_is_not_json_is_malformed_json(data: bytes) -> None:
    refused(data, InvalidReason.MALFORMED_JSON)


def test_a_tombstone_is_malformed_json() -> None:
    refused(None, InvalidReason.MALFORMED_JSON)  # type: ignore[arg-type]


@pytest.mark.parametrize("data", [b"[]", b'"PlaceBid"', b"12", b"null", b"true"])
def test_json_that_is_not_an_object_is_not_an_object(data: bytes) -> None:
    refused(data, InvalidReason.NOT_AN_OBJECT)


def test_a_missing_type_is_a_missing_field() -> None:
    refused(without(PLACE_BID, "type"), InvalidReason.MISSING_FIELD, "type")


def test_an_unknown_type_is_an_unknown_command_type() -> None:
    error = refused(raw(PLACE_BID, type="Bid"), InvalidReason.UNKNOWN_COMMAND_TYPE, "type")

    assert "PlaceBid" in error.message  # tells the producer what would be valid


@pytest.mark.parametrize("field", [k for k in OPEN_AUCTION if k != "type"])
def test_every_open_auction_field_is_required(field: str) -> None:
    refused(without(OPEN_AUCTION, field), InvalidReason.MISSING_FIELD, field)


@pytest.mark.parametrize("field", [k for k in PLACE_BID if k != "type"])
def test_every_place_bid_field_is_required(field: str) -> None:
    error = refused(without(PLACE_BID, field), InvalidReason.MISSING_FIELD, field)

    assert field in error.message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", True),  # bool is not an integer here
        ("amount", 1500.0),
        ("amount", "1500"),
        ("amount", None),
        ("bidder_id", 7),
        ("currency", ["EUR"]),
        ("issued_at", 1714564800),
        ("type", 1),
    ],
)
def test_ill_typed_fields_are_wrong_type(field: str, value: object) -> None:
    refused(raw(PLACE_BID, **{field: value}), InvalidReason.WRONG_TYPE, field)


def test_an_integer_beyond_64_bits_is_wrong_type() -> None:
    data = raw(PLACE_BID).replace(b'"amount":1500', b'"amount":' + b"9" * 30)

    refused(data, InvalidReason.WRONG_TYPE, "amount")  # JSON parsers read it as a float


@pytest.mark.parametrize(
    ("payload", "field", "value"),
    [
        (PLACE_BID, "amount", 0),
        (PLACE_BID, "amount", -5),
        (PLACE_BID, "amount", MAX_AMOUNT + 1),
        (OPEN_AUCTION, "starting_price", -1),
        (OPEN_AUCTION, "min_increment", 0),
        (OPEN_AUCTION, "min_increment", MAX_AMOUNT + 1),
    ],
)
def test_amounts_outside_their_range_are_amount_out_of_range(
    payload: dict[str, object], field: str, value: int
) -> None:
    refused(raw(payload, **{field: value}), InvalidReason.AMOUNT_OUT_OF_RANGE, field)


def test_the_largest_amount_is_accepted() -> None:
    command = decode_command(raw(PLACE_BID, amount=MAX_AMOUNT))

    assert isinstance(command, PlaceBid)
    assert command.amount == MAX_AMOUNT


@pytest.mark.parametrize(
    "value",
    ["", "-a", ".a", "a b", "a/b", "ä", "a\n", "a" * 129, "a\u0000"],
    ids=[
        "empty",
        "dash-first",
        "dot-first",
        "space",
        "slash",
        "non-ascii",
        "newline",
        "129",
        "nul",
    ],
)
def test_malformed_ids_are_invalid_id(value: str) -> None:
    refused(raw(PLACE_BID, bidder_id=value), InvalidReason.INVALID_ID, "bidder_id")


@pytest.mark.parametrize("value", ["a", "A-1", "user@example.com", "x:y.z_w-1", "a" * 128])
def test_well_formed_ids_are_accepted(value: str) -> None:
    assert decode_command(raw(PLACE_BID, auction_id=value)).auction_id == value


@pytest.mark.parametrize("value", ["eur", "EURO", "EU", "E1R", ""])
def test_malformed_currencies_are_invalid_currency(value: str) -> None:
    refused(raw(PLACE_BID, currency=value), InvalidReason.INVALID_CURRENCY, "currency")


@pytest.mark.parametrize(
    "value",
    [
        "2024-05-01T12:00:00",  # naive: no offset
        "2024-05-01",
        "yesterday",
        "2024-13-01T00:00:00Z",
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        "",
    ],
)
def test_timestamps_without_offset_or_unparseable_are_invalid_timestamp(value: str) -> None:
    error = refused(
        raw(OPEN_AUCTION, closes_at=value), InvalidReason.INVALID_TIMESTAMP, "closes_at"
    )

    assert "2024-05-01T12:00:00Z" in error.message  # shows a valid example


def test_invalid_message_is_an_outbid_error_that_is_not_retriable() -> None:
    error = refused(b"{", InvalidReason.MALFORMED_JSON)

    assert isinstance(error, OutbidError)
    assert not error.retriable
    assert str(error).startswith("malformed_json: ")


# --- events ---------------------------------------------------------------------


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_every_event_round_trips(event: Event) -> None:
    assert decode_event(encode_event(event)) == event


def test_encoded_events_carry_type_schema_version_and_every_field() -> None:
    payload = orjson.loads(encode_event(EVENTS[2]))

    assert payload == {
        "type": "BidRejected",
        "schema_version": 2,
        "auction_id": "a-1",
        "seq": 3,
        "event_id": "e-3",
        "command_id": "c-3",
        "occurred_at": "2024-05-01T12:00:00Z",
        "bidder_id": "bob",
        "amount": 1500,
        "currency": "EUR",
        "reason": "too_low",
    }


def test_events_decided_by_the_domain_round_trip() -> None:
    state = AuctionState.empty("a-1")
    for command in COMMANDS[:2]:
        for event in decide(state, command, T0):
            assert decode_event(encode_event(event)) == event
            state = evolve(state, event)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"type": "BidWithdrawn"}, InvalidReason.UNKNOWN_EVENT_TYPE),
        ({"reason": "too_high"}, InvalidReason.INVALID_VALUE),
        ({"seq": 0}, InvalidReason.INVALID_VALUE),
        ({"seq": "3"}, InvalidReason.WRONG_TYPE),
        ({"schema_version": True}, InvalidReason.WRONG_TYPE),
        ({"occurred_at": "2024-05-01T12:00:00"}, InvalidReason.INVALID_TIMESTAMP),
    ],
)
def test_defective_events_are_refused_with_a_precise_reason(
    changes: dict[str, object], reason: InvalidReason
) -> None:
    data = orjson.dumps(orjson.loads(encode_event(EVENTS[2])) | changes)

    with pytest.raises(InvalidMessage) as caught:
        decode_event(data)

    assert caught.value.reason == reason


def test_an_event_without_schema_version_is_a_missing_field() -> None:
    payload = orjson.loads(encode_event(EVENTS[0]))
    del payload["schema_version"]

    with pytest.raises(InvalidMessage) as caught:
        decode_event(orjson.dumps(payload))

    assert (caught.value.reason, caught.value.field) == ("missing_field", "schema_version")


def test_a_close_with_a_winner_but_no_price_is_refused() -> None:
    data = orjson.dumps(orjson.loads(encode_event(EVENTS[3])) | {"price": None})

    with pytest.raises(InvalidMessage, match="both"):
        decode_event(data)


# --- stored state and view -------------------------------------------------------


def test_auction_state_round_trips_including_recent_command_ids() -> None:
    state = AuctionState(
        "a-1", 7, AuctionStatus.OPEN, "s", 0, 5, "EUR", CLOSES, 900, "bob", 3, ("c-1", "c-2")
    )

    assert decode_state(encode_state(state)) == state


def test_the_empty_auction_state_round_trips() -> None:
    assert decode_state(encode_state(AuctionState.empty("a-1"))) == AuctionState.empty("a-1")


def test_highest_bid_view_round_trips() -> None:
    view = HighestBid(
        "a-1", AuctionStatus.CLOSED, 900, "bob", "c-9", "EUR", CLOSES, 12, T0, 4, "bob", 900
    )

    assert decode_view(encode_view(view)) == view
    assert decode_view(encode_view(HighestBid.empty("a-1"))) == HighestBid.empty("a-1")


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x01garbage",
        b'{"schema_version": 1}',
        b'{"schema_version": 99, "auction_id": "a-1"}',
        b"[1, 2]",
    ],
)
def test_a_corrupted_stored_value_raises_invalid_message(data: bytes) -> None:
    with pytest.raises(InvalidMessage):
        decode_state(data)
    with pytest.raises(InvalidMessage):
        decode_view(data)


def test_a_stored_state_with_a_bad_recent_id_is_refused() -> None:
    payload = orjson.loads(encode_state(AuctionState.empty("a-1"))) | {
        "recent_command_ids": ["ok", 5]
    }

    with pytest.raises(InvalidMessage) as caught:
        decode_state(orjson.dumps(payload))

    assert caught.value.reason == "wrong_type"


# --- docs/schema.md is the contract -------------------------------------------------


def schema_doc_examples() -> list[dict[str, object]]:
    text = (Path(__file__).parents[3] / "docs" / "schema.md").read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    examples = []
    for block in re.findall(r"```json\n(.*?)```", text, flags=re.DOTALL):
        position = 0
        while block[position:].strip():
            value, end = decoder.raw_decode(block, position)
            examples.append(value)
            position = end + len(block[end:]) - len(block[end:].lstrip())
    return examples


def test_every_example_in_the_schema_doc_decodes_and_current_ones_re_encode_identically() -> None:
    examples = schema_doc_examples()
    assert len(examples) >= 11  # three commands, every event type, the v1 example

    for example in examples:
        data = orjson.dumps(example)
        if "schema_version" not in example:
            assert orjson.loads(encode_command(decode_command(data))) == example
        elif example["schema_version"] == 2:
            assert orjson.loads(encode_event(decode_event(data))) == example
        else:
            decode_event(data)


@pytest.mark.parametrize(
    ("ids", "reason"),
    [
        (["ok", "not ok"], InvalidReason.INVALID_ID),
        (["ok", "a" * 129], InvalidReason.INVALID_ID),
        (["ok", "-a"], InvalidReason.INVALID_ID),
        (["ok", None], InvalidReason.WRONG_TYPE),
    ],
)
def test_every_recent_command_id_of_a_stored_state_is_checked(
    ids: list[object], reason: InvalidReason
) -> None:
    payload = orjson.loads(encode_state(AuctionState.empty("a-1"))) | {"recent_command_ids": ids}

    with pytest.raises(InvalidMessage) as caught:
        decode_state(orjson.dumps(payload))

    assert (caught.value.reason, caught.value.field) == (reason, "recent_command_ids")


def test_a_stored_state_with_many_recent_command_ids_round_trips() -> None:
    recent = tuple(f"cmd-{n}:{'x' * (n % 120)}" for n in range(1024))
    state = AuctionState(
        "a-1", 1024, AuctionStatus.OPEN, "s", 0, 5, "EUR", CLOSES, 900, "b", 3, recent
    )

    assert decode_state(encode_state(state)) == state
