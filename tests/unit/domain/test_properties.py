"""Properties over generated command streams, and fuzzing of the decoders.

The reference model below is deliberately naive (dicts and loops, no domain
code) so that decide/evolve are checked against an independent reading of
the rules, not against themselves.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from random import Random

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.domain import codec
from app.domain.auction import AuctionState, decide, evolve, fold, follow_recent
from app.domain.codec import (
    decode_command,
    decode_event,
    decode_state,
    decode_view,
    encode_command,
    encode_event,
    encode_state,
)
from app.domain.commands import CloseAuction, Command, OpenAuction, PlaceBid
from app.domain.events import AuctionClosed, BidRejected, CommandRejected, Event
from app.domain.highest_bid import HighestBid, apply
from app.domain.wire import MAX_AMOUNT, Fields, load_object
from app.errors import InvalidMessage, InvalidReason

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
AUCTIONS = ("a-1", "a-2", "a-3")
USERS = ("u-1", "u-2", "u-3")
CURRENCIES = ("EUR", "EUR", "EUR", "USD")

Script = list[tuple[Command, datetime]]
FAST = settings(
    max_examples=200,
    deadline=None,
    database=None,  # leave no .hypothesis directory behind
    suppress_health_check=[HealthCheck.too_slow],
)


# --- generating command streams ------------------------------------------------


# kind, auction, user, small number, small number, currency, minutes until closing
_shapes = st.tuples(
    st.sampled_from(("open", "open", "bid", "bid", "bid", "bid", "bid", "bid", "close")),
    st.sampled_from(AUCTIONS),
    st.sampled_from(USERS),
    st.integers(0, 60),
    st.integers(1, 5),
    st.sampled_from(CURRENCIES),
    st.integers(0, 240),
)


def new_command(
    command_id: str, now: datetime, shape: tuple[str, str, str, int, int, str, int]
) -> Command:
    kind, auction, user, number, increment, currency, minutes = shape
    if kind == "open":
        closes_at = now + timedelta(minutes=minutes)
        return OpenAuction(
            command_id, now, auction, user, number // 3, increment, currency, closes_at
        )
    if kind == "bid":
        return PlaceBid(command_id, now, auction, user, max(number, 1), currency)
    return CloseAuction(command_id, now, auction)


@st.composite
def scripts(draw: st.DrawFn) -> Script:
    """Commands with nondecreasing clocks; about one in five re-sends an earlier one."""
    now = T0
    sent: list[Command] = []
    script: Script = []
    for index in range(draw(st.integers(0, 40))):
        now += timedelta(minutes=draw(st.sampled_from((0, 0, 1, 2, 5, 10, 60))))
        if sent and draw(st.integers(0, 4)) == 0:
            command = sent[draw(st.integers(0, len(sent) - 1))]
        else:
            command = new_command(f"c-{index}", now, draw(_shapes))
            sent.append(command)
        script.append((command, now))
    return script


# --- the reference model ----------------------------------------------------------


@dataclass
class RefAuction:
    seller: str
    starting: int
    increment: int
    currency: str
    closes_at: datetime
    is_open: bool = True
    highest: int | None = None
    bidder: str | None = None


def reference(script: Script) -> tuple[list[list[str]], dict[str, RefAuction]]:
    """Per command the outcome labels, and the final auctions, by the rules as written."""
    auctions: dict[str, RefAuction] = {}
    seen: dict[str, set[str]] = defaultdict(set)
    outcomes: list[list[str]] = []
    for command, now in script:
        out: list[str] = []
        outcomes.append(out)
        if command.command_id in seen[command.auction_id]:
            continue
        seen[command.auction_id].add(command.command_id)
        auction = auctions.get(command.auction_id)
        if auction is not None and auction.is_open and now >= auction.closes_at:
            auction.is_open = False
            out.append("AuctionClosed:expired")
            if isinstance(command, CloseAuction):
                continue
        if isinstance(command, OpenAuction):
            out.append(ref_open(auctions, command))
        elif isinstance(command, CloseAuction):
            out.append(ref_close(auction))
        else:
            out.append(ref_bid(auction, command))
    return outcomes, auctions


def ref_open(auctions: dict[str, RefAuction], command: OpenAuction) -> str:
    if command.auction_id in auctions:
        return "CommandRejected:already_exists"
    auctions[command.auction_id] = RefAuction(
        command.seller_id,
        command.starting_price,
        command.min_increment,
        command.currency,
        command.closes_at,
    )
    return "AuctionOpened"


def ref_close(auction: RefAuction | None) -> str:
    if auction is None:
        return "CommandRejected:unknown_auction"
    if not auction.is_open:
        return "CommandRejected:already_closed"
    auction.is_open = False
    return "AuctionClosed:explicit"


def ref_bid(auction: RefAuction | None, command: PlaceBid) -> str:
    if auction is None:
        return "BidRejected:unknown_auction"
    if not auction.is_open:
        return "BidRejected:auction_closed"
    if command.currency != auction.currency:
        return "BidRejected:wrong_currency"
    if command.bidder_id == auction.seller:
        return "BidRejected:seller_cannot_bid"
    minimum = auction.starting if auction.highest is None else auction.highest + auction.increment
    if command.amount < minimum:
        return "BidRejected:too_low"
    auction.highest, auction.bidder = command.amount, command.bidder_id
    return "BidAccepted"


def label(event: Event) -> str:
    if isinstance(event, BidRejected | CommandRejected | AuctionClosed):
        return f"{type(event).__name__}:{event.reason}"
    return type(event).__name__


# --- properties -------------------------------------------------------------------


@FAST
@given(script=scripts(), rnd=st.randoms(use_true_random=False))
def test_decide_and_evolve_agree_with_the_reference_model(script: Script, rnd: Random) -> None:
    states = {a: AuctionState.empty(a) for a in AUCTIONS}
    history: dict[str, list[Event]] = {a: [] for a in AUCTIONS}
    decided: set[tuple[str, str]] = set()
    outcomes: list[list[str]] = []

    for command, now in script:
        before = states[command.auction_id]
        events = decide(before, command, now)
        if (command.auction_id, command.command_id) in decided:
            assert events == []  # (3) a re-sent command changes nothing
        decided.add((command.auction_id, command.command_id))
        state = before
        for event in events:
            state = evolve(state, event)
        assert decide(state, command, now) == []  # (3) ...including right after
        states[command.auction_id] = state
        history[command.auction_id].extend(events)
        outcomes.append([label(e) for e in events])

    expected, ref_auctions = reference(script)
    assert outcomes == expected
    for auction_id, state in states.items():
        events = history[auction_id]
        ref = ref_auctions.get(auction_id)
        # (1) the highest accepted bid matches the reference
        assert (state.highest_bid, state.highest_bidder) == (
            (ref.highest, ref.bidder) if ref else (None, None)
        )
        # (2) seqs are 1..n without gaps; folding them rebuilds the state
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert state.version == len(events)
        assert fold(events, auction_id) == state
        # (4) the projection, fed with redeliveries, shows the same highest bid
        view = project_with_redeliveries(events, rnd)
        if view is not None:
            assert (view.highest_bid, view.highest_bidder) == (
                state.highest_bid,
                state.highest_bidder,
            )
            assert (view.seq, view.bid_count, view.status) == (
                state.version,
                state.bid_count,
                state.status,
            )
        # stored values and events survive the wire
        assert decode_state(encode_state(state)) == state
        assert [decode_event(encode_event(e)) for e in events] == events


def project_with_redeliveries(events: list[Event], rnd: Random) -> HighestBid | None:
    """Every event in order, each maybe followed by a redelivery of itself or an older one."""
    view: HighestBid | None = None
    for index, event in enumerate(events):
        view = apply(view, event)
        if rnd.random() < 0.5:
            view = apply(view, events[rnd.randint(0, index)])
    return view


# --- fuzzing the decoders ---------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(
        ["", "a-1", "EUR", "2024-05-01T12:00:00Z", "2024-05-01T12:00:00", "PlaceBid"]
    ),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
VALID_COMMANDS = [
    orjson.loads(encode_command(c))
    for c in (
        OpenAuction("c-1", T0, "a-1", "s-1", 0, 1, "EUR", T0 + timedelta(days=1)),
        PlaceBid("c-2", T0, "a-1", "u-1", 1500, "EUR"),
        CloseAuction("c-3", T0, "a-1"),
    )
]


def _decided_events() -> list[Event]:
    state, events = AuctionState.empty("a-1"), []
    commands: list[Command] = [
        OpenAuction("c-1", T0, "a-1", "s-1", 10, 1, "EUR", T0 + timedelta(days=1)),
        PlaceBid("c-2", T0, "a-1", "u-1", 10, "EUR"),
        PlaceBid("c-3", T0, "a-1", "u-2", 10, "EUR"),
        CloseAuction("c-4", T0, "a-1"),
        CloseAuction("c-5", T0, "a-1"),
    ]
    for command in commands:
        for event in decide(state, command, T0):
            state = evolve(state, event)
            events.append(event)
    return events


VALID_EVENTS = [orjson.loads(encode_event(e)) for e in _decided_events()] + [
    {
        "type": "BidAccepted",
        "schema_version": 1,
        "auction_id": "a-1",
        "seq": 2,
        "event_id": "e-2",
        "command_id": "c-2",
        "occurred_at": "2024-05-01T12:00:00Z",
        "bidder": "u-1",
        "price": {"amount": 1500, "currency": "EUR"},
    }
]


@st.composite
def mutated(draw: st.DrawFn, valid: list[dict[str, object]]) -> bytes:
    payload = dict(draw(st.sampled_from(valid)))
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from([*payload, "type", "schema_version", "extra"]))
        if draw(st.booleans()):
            payload.pop(key, None)
        else:
            payload[key] = draw(json_values)
    return orjson.dumps(payload)


@st.composite
def corrupted(draw: st.DrawFn, valid: list[dict[str, object]]) -> bytes:
    data = bytearray(orjson.dumps(draw(st.sampled_from(valid))))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data) - 1))
        if draw(st.booleans()):
            data[position] = draw(st.integers(0, 255))
        else:
            del data[position]
    return bytes(data)


def decodes_or_refuses_command(data: bytes) -> None:
    try:
        command = decode_command(data)
    except InvalidMessage as exc:
        reason = exc.reason
    else:  # whatever decodes is a valid command that survives a round trip
        assert command.issued_at.tzinfo is UTC
        assert decode_command(encode_command(command)) == command
        return
    assert reason in set(InvalidReason)  # a known dead-letter code


def decodes_or_refuses_event(data: bytes) -> None:
    try:
        event = decode_event(data)
    except InvalidMessage as exc:
        reason = exc.reason
    else:
        assert event.occurred_at.tzinfo is UTC
        assert decode_event(encode_event(event)) == event
        return
    assert reason in set(InvalidReason)


any_input = (
    st.binary(max_size=200)
    | json_values.map(orjson.dumps)
    | mutated(VALID_COMMANDS)
    | mutated(VALID_EVENTS)
    | corrupted(VALID_COMMANDS)
    | corrupted(VALID_EVENTS)
)


@settings(max_examples=400, deadline=None, database=None)
@given(data=any_input)
def test_decode_command_raises_nothing_but_invalid_message(data: bytes) -> None:
    decodes_or_refuses_command(data)


@settings(max_examples=400, deadline=None, database=None)
@given(data=any_input)
def test_decode_event_raises_nothing_but_invalid_message(data: bytes) -> None:
    decodes_or_refuses_event(data)


@settings(max_examples=100, deadline=None, database=None)
@given(data=any_input)
def test_decode_state_and_view_raise_nothing_but_invalid_message(data: bytes) -> None:
    for decoder in (decode_state, decode_view):
        with contextlib.suppress(InvalidMessage):
            decoder(data)


# --- the quick command readers agree with the field-by-field ones ---------------------

# Mostly well-formed commands with, here and there, a value at or past a rule's edge: the
# quick path must accept exactly what the checked path accepts, with the same result.
ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}", fullmatch=True)
odd_ids = st.sampled_from(["", " a", "a b", "a\n", "-a", "ä", "a" * 129]) | st.text(max_size=6)
amounts = st.sampled_from([1, 2, MAX_AMOUNT]) | st.integers(1, 10**6)
odd_amounts = st.sampled_from([0, -1, MAX_AMOUNT + 1, True, 1.0, "1", None])
currencies = st.sampled_from(["EUR", "USD"])
odd_currencies = st.sampled_from(["eur", "EU", "EURO", "E1R", "ÄUR", " EUR", ""])
timestamps = st.sampled_from(
    [
        "2024-05-01T12:00:00Z",
        "2024-05-01T12:00:00.250Z",
        "2024-05-01T12:00:00.000250+00:00",
        "2024-05-01T14:00:00+02:00",
        "2024-05-01T12:00Z",
        "20240501T120000Z",
    ]
) | st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-3))])).map(
    lambda d: d.isoformat()
)
odd_timestamps = st.sampled_from(
    [
        "2024-05-01T12:00:00",
        "2024-05-01",
        "0001-01-01T00:00:00+01:00",
        "2024-05-01T12:00:00z",
        "yesterday",
        "",
    ]
)


@st.composite
def near_commands(draw: st.DrawFn) -> bytes:
    def pick(usual: st.SearchStrategy[object], odd: st.SearchStrategy[object]) -> object:
        return draw(odd if draw(st.integers(0, 11)) == 0 else usual)

    kind = draw(st.sampled_from(["OpenAuction", "PlaceBid", "CloseAuction"]))
    payload: dict[str, object] = {
        "type": kind,
        "command_id": pick(ids, odd_ids),
        "issued_at": pick(timestamps, odd_timestamps),
        "auction_id": pick(ids, odd_ids),
    }
    if kind == "OpenAuction":
        payload |= {
            "seller_id": pick(ids, odd_ids),
            "starting_price": pick(amounts | st.just(0), odd_amounts),
            "min_increment": pick(amounts, odd_amounts),
            "currency": pick(currencies, odd_currencies),
            "closes_at": pick(timestamps, odd_timestamps),
        }
    elif kind == "PlaceBid":
        payload |= {
            "bidder_id": pick(ids, odd_ids),
            "amount": pick(amounts, odd_amounts),
            "currency": pick(currencies, odd_currencies),
        }
    if draw(st.integers(0, 9)) == 0:
        key = draw(st.sampled_from(sorted(payload)))
        if draw(st.booleans()):
            del payload[key]
        else:
            payload[key] = draw(json_values)
    return orjson.dumps(payload)


def read_field_by_field(data: bytes) -> Command:
    """decode_command without its quick readers: what they must agree with."""
    return codec._read_command(Fields(load_object(data, "command")))


def outcome(read: Callable[[bytes], Command], data: bytes) -> object:
    try:
        command = read(data)
    except InvalidMessage as exc:
        return (exc.reason, exc.field, exc.message)
    return (type(command), command, command.issued_at.tzinfo is UTC)


@settings(max_examples=600, deadline=None, database=None)
@given(data=near_commands() | any_input)
def test_the_quick_command_readers_agree_with_the_field_by_field_readers(data: bytes) -> None:
    assert outcome(decode_command, data) == outcome(read_field_by_field, data)


EDGE_VALUES: dict[str, list[object]] = {
    "id": ["a", "a" * 128, "a" * 129, "", "-a", "a b", "a\n", "ä", 7, None],
    "money": [0, 1, MAX_AMOUNT, MAX_AMOUNT + 1, -1, True, 1.0, "1", None],
    "currency": ["EUR", "eur", "EU", "EURO", "E1R", "ÄUR", "", ["EUR"], None],
    "timestamp": [
        "2024-05-01T12:00:00Z",
        "2024-05-01T12:00:00+00:00",
        "2024-05-01T14:00:00+02:00",
        "2024-05-01T12:00:00",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "",
        1714564800,
        None,
    ],
}
FIELD_KINDS = {
    "command_id": "id",
    "auction_id": "id",
    "seller_id": "id",
    "bidder_id": "id",
    "starting_price": "money",
    "min_increment": "money",
    "amount": "money",
    "currency": "currency",
    "issued_at": "timestamp",
    "closes_at": "timestamp",
}
ONE_VALUE_OFF = [
    (payload["type"], key, value)
    for payload in VALID_COMMANDS
    for key in payload
    if key != "type"
    for value in EDGE_VALUES[FIELD_KINDS[key]]
]


@pytest.mark.parametrize(("kind", "key", "value"), ONE_VALUE_OFF)
def test_a_command_with_one_value_at_an_edge_is_read_alike_by_both_paths(
    kind: str, key: str, value: object
) -> None:
    [payload] = [p for p in VALID_COMMANDS if p["type"] == kind]

    for data in (orjson.dumps(payload | {key: value}), orjson.dumps(payload | {key: None})):
        assert outcome(decode_command, data) == outcome(read_field_by_field, data)
    without = orjson.dumps({k: v for k, v in payload.items() if k != key})
    assert outcome(decode_command, without) == outcome(read_field_by_field, without)


# --- the duplicate check's set --------------------------------------------------


@FAST
@given(script=scripts(), max_recent=st.integers(1, 4), shrink_at=st.integers(0, 40))
def test_the_recent_ids_set_agrees_with_the_tuple(
    script: Script, max_recent: int, shrink_at: int
) -> None:
    """decide with a `seen` set kept by follow_recent decides exactly what decide with the tuple
    decides, and the set always holds exactly the tuple's ids (with a tiny window, so ids fall
    out and come back; the window may shrink midway, as after a lower OUTBID_RECENT_COMMANDS)."""
    states: dict[str, AuctionState] = {}
    seen: dict[str, set[str]] = {}
    for index, (command, now) in enumerate(script):
        window = max_recent if index < shrink_at else max(1, max_recent - 2)
        state = states.get(command.auction_id) or AuctionState.empty(command.auction_id)
        ids = seen.setdefault(command.auction_id, set(state.recent_command_ids))
        with_tuple = decide(state, command, now, max_recent=window)
        with_set = decide(state, command, now, max_recent=window, seen=ids)
        assert with_set == with_tuple
        after = state
        for event in with_set:
            after = evolve(after, event, max_recent=window)
        followed = follow_recent(ids, state.recent_command_ids, after.recent_command_ids)
        assert followed == set(after.recent_command_ids)
        assert followed is ids, "kept in step in place, not rebuilt"
        ids = followed
        states[command.auction_id], seen[command.auction_id] = after, ids


def test_follow_recent_rebuilds_when_the_tuple_repeats_an_id() -> None:
    # an old snapshot could hold a repeated id: the set cannot mirror it, so it is rebuilt
    before = ("a", "b", "a")
    assert follow_recent({"a", "b"}, before, ("b", "a", "c")) == {"a", "b", "c"}
