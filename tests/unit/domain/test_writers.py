"""The per-type writers write exactly the bytes of the field-by-field reference layout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.auction import AuctionState, AuctionStatus
from app.domain.codec import decode_event, encode_command, encode_event, encode_state, encode_view
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
from app.domain.wire import format_timestamp
from app.domain.writers import STATE_SCHEMA_VERSION, VIEW_SCHEMA_VERSION, dump_fields

SETTINGS = settings(max_examples=150, deadline=None, database=None)
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

# Aware instants in UTC and in other offsets (written converted to UTC), whole seconds and not.
offsets = st.sampled_from(
    [UTC, timezone(timedelta(0)), timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))]
)
# hypothesis wants naive bounds; they keep every offset's conversion to UTC in range.
NAIVE_MIN, NAIVE_MAX = datetime(2, 1, 1), datetime(9998, 12, 31)  # noqa: DTZ001
in_any_offset = st.datetimes(min_value=NAIVE_MIN, max_value=NAIVE_MAX, timezones=offsets)
whole_seconds = st.datetimes(timezones=st.just(UTC)).map(lambda d: d.replace(microsecond=0))
moments = in_any_offset | whole_seconds
ids = st.text(alphabet="abcXYZ019._:@-", min_size=1, max_size=12)
money = st.integers(0, 10**15)
optional_ids = st.none() | ids
optional_money = st.none() | money
optional_moments = st.none() | moments

commands = st.one_of(
    st.builds(OpenAuction, ids, moments, ids, ids, money, money, st.just("EUR"), moments),
    st.builds(PlaceBid, ids, moments, ids, ids, money, st.sampled_from(["EUR", "USD"])),
    st.builds(CloseAuction, ids, moments, ids),
)
header = (ids, st.integers(1, 2**40), ids, ids, moments)
events = st.one_of(
    st.builds(AuctionOpened, *header, ids, money, money, st.just("EUR"), moments),
    st.builds(BidAccepted, *header, ids, money, st.just("EUR")),
    st.builds(
        BidRejected, *header, ids, money, st.just("EUR"), st.sampled_from(BidRejectionReason)
    ),
    st.builds(AuctionClosed, *header, optional_ids, optional_money, st.sampled_from(CloseReason)),
    st.builds(
        CommandRejected,
        *header,
        st.sampled_from(["OpenAuction", "CloseAuction"]),
        st.sampled_from(CommandRejectionReason),
    ),
)
states = st.builds(
    AuctionState,
    ids,
    st.integers(0, 10**6),
    st.sampled_from(AuctionStatus),
    optional_ids,
    money,
    money,
    st.none() | st.just("EUR"),
    optional_moments,
    optional_money,
    optional_ids,
    st.integers(0, 10**6),
    st.lists(ids, max_size=5).map(tuple),
)
views = st.builds(
    HighestBid,
    ids,
    st.sampled_from(AuctionStatus),
    optional_money,
    optional_ids,
    optional_ids,
    st.none() | st.just("EUR"),
    optional_moments,
    st.integers(0, 10**6),
    optional_moments,
    st.integers(0, 10**6),
    optional_ids,
    optional_money,
)


@SETTINGS
@given(command=commands)
def test_commands_are_written_byte_for_byte_as_the_reference_layout(command: Command) -> None:
    assert encode_command(command) == dump_fields({"type": command.TYPE}, command)


@SETTINGS
@given(event=events)
def test_events_are_written_byte_for_byte_as_the_reference_layout(event: Event) -> None:
    head: dict[str, object] = {"type": event.TYPE, "schema_version": event.SCHEMA_VERSION}
    assert encode_event(event) == dump_fields(head, event)


@SETTINGS
@given(state=states)
def test_stored_states_are_written_byte_for_byte_as_the_reference_layout(
    state: AuctionState,
) -> None:
    assert encode_state(state) == dump_fields({"schema_version": STATE_SCHEMA_VERSION}, state)


@SETTINGS
@given(view=views)
def test_stored_views_are_written_byte_for_byte_as_the_reference_layout(view: HighestBid) -> None:
    assert encode_view(view) == dump_fields({"schema_version": VIEW_SCHEMA_VERSION}, view)


def test_an_instant_in_another_offset_is_written_in_utc_with_z() -> None:
    event = BidAccepted(
        "a", 1, "e", "c", T0.astimezone(timezone(timedelta(hours=2))), "u", 5, "EUR"
    )

    assert orjson.loads(encode_event(event))["occurred_at"] == "2024-05-01T12:00:00Z"
    assert decode_event(encode_event(event)) == event


def test_a_naive_instant_is_refused_as_before() -> None:
    naive = datetime(2024, 5, 1, 12, 0)  # noqa: DTZ001 - the point of the test

    with pytest.raises(ValueError, match="naive"):
        encode_command(PlaceBid("c", naive, "a", "u", 5, "EUR"))


class _Clock(datetime):
    """A datetime subclass, as time-freezing libraries hand out; orjson refuses those."""


def test_a_datetime_subclass_is_written_like_a_datetime() -> None:
    frozen = _Clock(2024, 5, 1, 12, 0, 0, 250, tzinfo=UTC)

    assert orjson.loads(encode_command(CloseAuction("c", frozen, "a")))["issued_at"] == (
        "2024-05-01T12:00:00.000250Z"
    )


@settings(max_examples=300, deadline=None, database=None)
@given(moment=moments)
def test_format_timestamp_is_isoformat_in_utc_with_z(moment: datetime) -> None:
    expected = moment.astimezone(UTC).isoformat().removesuffix("+00:00") + "Z"

    assert format_timestamp(moment) == expected
    assert format_timestamp(_Clock.fromisoformat(moment.isoformat())) == expected
