"""The step (agents/step.py) against every kind of command: the records it returns, and the state.

No Kafka and no RocksDB: the partition state is a dict. Whatever engine moves the records, this is
what it must write for each input.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents import dead_letters
from agents.bid_rate import BidRate
from agents.records import Destination, Incoming, Outcome, Result
from agents.step import CommandStep, Entry
from app import headers
from app.domain import (
    AuctionState,
    BidAccepted,
    CloseAuction,
    Command,
    OpenAuction,
    PlaceBid,
    decode_event,
    encode_command,
)
from app.domain import auction as auction_module

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
TOPIC = "bid-commands"


class Tables:
    """The smallest PartitionState: every auction's entry in a dict."""

    def __init__(self) -> None:
        self.entries: dict[bytes, Entry] = {}

    def entry(self, key: bytes, auction_id: str) -> Entry:
        return self.entries.setdefault(key, Entry(AuctionState.empty(auction_id), None, None))


def record(
    command: Command | bytes | None, *, key: bytes | None = None, offset: int = 0
) -> Incoming:
    if isinstance(command, bytes) or command is None:
        value = command
    else:
        value = encode_command(command)
        key = key if key is not None else command.auction_id.encode()
    return Incoming(TOPIC, 3, offset, key, value)


def open_auction(auction: str = "A-1", command_id: str = "open-1") -> OpenAuction:
    return OpenAuction(command_id, T0, auction, "seller", 1000, 100, "EUR", T0 + timedelta(hours=1))


def bid(command_id: str, amount: int, auction: str = "A-1", bidder: str = "b1") -> PlaceBid:
    return PlaceBid(command_id, T0, auction, bidder, amount, "EUR")


@pytest.fixture
def step() -> CommandStep:
    return CommandStep(max_recent=128, snapshot_every=3, clock=lambda: T0 + timedelta(seconds=5))


def headers_of(result: Result, index: int = 0) -> dict[str, bytes]:
    return {k: v for k, v in result.outputs[index].headers if isinstance(v, bytes)}


def test_open_then_bid_append_events_to_the_auctions_partition_and_update_every_table(
    step: CommandStep,
) -> None:
    tables = Tables()
    opened = step(tables, record(open_auction()))
    placed = step(tables, record(bid("bid-1", 1500), offset=1))

    for result in (opened, placed):
        assert result.outcome is Outcome.DECIDED
        assert [o.destination for o in result.outputs] == [Destination.EVENTS]
        assert result.outputs[0].key == b"A-1"
        assert result.outputs[0].partition == 3  # co-partitioned with the command
        assert float(headers_of(result)[headers.ISSUED_AT]) == T0.timestamp()
    event = decode_event(placed.outputs[0].value or b"")
    assert isinstance(event, BidAccepted)
    assert event.seq == 2
    entry = tables.entries[b"A-1"]
    assert (entry.state.version, entry.state.highest_bid) == (2, 1500)
    assert entry.view is not None
    assert (entry.view.seq, entry.view.highest_bid, entry.view.highest_bidder) == (2, 1500, "b1")
    assert entry.rate == BidRate(int((T0 + timedelta(seconds=5)).timestamp()) // 60, 1)
    assert entry.changed


def test_a_rejected_bid_is_an_event_and_changes_the_view_seq_only(step: CommandStep) -> None:
    tables = Tables()
    step(tables, record(open_auction()))
    rejected = step(tables, record(bid("low", 10)))
    assert rejected.outcome is Outcome.DECIDED
    assert [e.TYPE for e in rejected.events] == ["BidRejected"]
    entry = tables.entries[b"A-1"]
    assert entry.view is not None
    assert (entry.view.seq, entry.view.highest_bid) == (2, None)
    assert entry.rate is None  # no accepted bid: nothing counted


def test_a_duplicate_command_id_writes_nothing_and_changes_nothing(step: CommandStep) -> None:
    tables = Tables()
    step(tables, record(open_auction()))
    step(tables, record(bid("bid-1", 1500)))
    before = tables.entries[b"A-1"].state
    again = step(tables, record(bid("bid-1", 1500), offset=9))
    assert again.outcome is Outcome.DUPLICATE
    assert again.outputs == ()
    assert tables.entries[b"A-1"].state is before


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"this is not json", "malformed_json"),
        (b"\xff\xfe not utf-8", "not_utf8"),
        (b"[1, 2]", "not_an_object"),
        (b'{"type":"PlaceBid","auction_id":"A-1"}', "missing_field"),
        (
            b'{"type":"Teleport","auction_id":"A-2","command_id":"c","issued_at":"2026-01-01T00:00:00Z"}',
            "unknown_command_type",
        ),
        (None, "malformed_json"),  # a null value (a tombstone written to the commands topic)
        (b"", "malformed_json"),
    ],
)
def test_garbage_is_dead_lettered_with_its_reason_and_source_unchanged(
    step: CommandStep, value: bytes | None, reason: str
) -> None:
    tables = Tables()
    result = step(tables, Incoming(TOPIC, 5, 42, b"some-key", value))
    assert result.outcome is Outcome.DEAD_LETTER
    assert result.reason == reason
    (output,) = result.outputs
    assert output.destination is Destination.DLQ
    assert (output.key, output.value) == (b"some-key", value)
    found = {k: v for k, v in output.headers if isinstance(v, bytes)}
    assert found[dead_letters.REASON] == reason.encode()
    assert found[dead_letters.SOURCE_TOPIC] == TOPIC.encode()
    assert found[dead_letters.SOURCE_PARTITION] == b"5"
    assert found[dead_letters.SOURCE_OFFSET] == b"42"
    assert tables.entries == {}


@pytest.mark.parametrize("key", [None, b"", b"A-9", b'"A-1"'])
def test_a_command_under_another_key_is_re_sent_under_its_auction_id(
    step: CommandStep, key: bytes | None
) -> None:
    tables = Tables()
    command = bid("bid-1", 1500)
    result = step(tables, Incoming(TOPIC, 6, 77, key, encode_command(command)))
    assert result.outcome is Outcome.REROUTED
    (output,) = result.outputs
    assert output.destination is Destination.COMMANDS
    assert output.key == b"A-1"
    assert output.partition is None  # Kafka's partitioner places it by key
    assert output.value == encode_command(command)
    assert dict(output.headers)[headers.REROUTED_FROM] == f"{TOPIC}/6/77".encode()
    assert tables.entries == {}  # decided where it lands, not here


def test_an_aggregate_snapshot_rides_on_the_event_that_crosses_every_n(step: CommandStep) -> None:
    tables = Tables()
    marked = []
    commands = [open_auction(), *(bid(f"b{n}", 1100 + 100 * n) for n in range(6))]
    for command in commands:
        result = step(tables, record(command))
        marked += [o.snapshot.version for o in result.outputs if o.snapshot is not None]
    assert marked == [3, 6]  # snapshot_every=3


def test_close_of_an_expired_auction_emits_the_expiry(step: CommandStep) -> None:
    late = CommandStep(max_recent=128, clock=lambda: T0 + timedelta(hours=2))
    tables = Tables()
    step(tables, record(open_auction()))
    result = late(tables, record(CloseAuction("close-1", T0, "A-1")))
    assert [e.TYPE for e in result.events] == ["AuctionClosed"]
    assert tables.entries[b"A-1"].state.status.value == "closed"


def test_a_handler_bug_is_dead_lettered_not_raised(
    step: CommandStep, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(auction_module, "evolve", broken)
    monkeypatch.setattr("agents.bids.evolve", broken)
    tables = Tables()
    result = step(tables, record(open_auction()))
    assert result.outcome is Outcome.DEAD_LETTER
    assert result.reason == "handler_error"
    assert tables.entries[b"A-1"].state.version == 0  # the entry is untouched


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=64),
            st.builds(
                lambda n, amount, auction: encode_command(bid(f"c{n}", amount, f"A-{auction}")),
                st.integers(0, 20),
                st.integers(-10, 10**6),
                st.integers(0, 3),
            ),
            st.builds(lambda a: encode_command(open_auction(f"A-{a}", f"o{a}")), st.integers(0, 3)),
        ),
        max_size=40,
    )
)
def test_any_sequence_of_records_never_raises_and_every_output_is_well_formed(
    values: list[bytes],
) -> None:
    step = CommandStep(max_recent=16, snapshot_every=2, clock=lambda: T0)
    tables = Tables()
    for offset, value in enumerate(values):
        key = None
        with contextlib.suppress(orjson.JSONDecodeError, AttributeError, UnicodeEncodeError):
            key = orjson.loads(value).get("auction_id", "").encode()
        result = step(tables, Incoming(TOPIC, 0, offset, key, value))
        for output in result.outputs:
            if output.destination is Destination.EVENTS:
                event = decode_event(output.value or b"")
                assert output.key == event.auction_id.encode()
        if result.outcome is Outcome.DECIDED:
            assert result.events
    for key, entry in tables.entries.items():
        assert entry.state.auction_id.encode() == key
        assert entry.view is None or entry.view.seq == entry.state.version


@pytest.mark.parametrize(
    ("key_len", "value_len"), [(10, 2_000_000), (700_000, 700_000), (1_200_000, 5)]
)
def test_a_record_too_big_to_park_whole_is_dead_lettered_truncated_with_its_sizes(
    key_len: int, value_len: int
) -> None:
    big = Incoming(TOPIC, 3, 9, b"k" * key_len, b"v" * value_len)
    result = CommandStep(max_recent=8, snapshot_every=0)(Tables(), big)
    assert result.outcome is Outcome.DEAD_LETTER
    (parked,) = result.outputs
    assert parked.destination is Destination.DLQ
    size = len(parked.key or b"") + len(parked.value or b"")
    assert size <= dead_letters.MAX_PARKED_BYTES  # the engine's producer can write it
    assert (big.key or b"").startswith(parked.key or b"")
    assert (big.value or b"").startswith(parked.value or b"")
    found = dict(parked.headers)
    assert found[dead_letters.TRUNCATED] == f"key={key_len} value={value_len}".encode()


def test_a_record_that_fits_is_dead_lettered_whole_without_the_truncated_header() -> None:
    garbage = Incoming(TOPIC, 3, 9, b"A-1", b"x" * 100_000)
    result = CommandStep(max_recent=8, snapshot_every=0)(Tables(), garbage)
    (parked,) = result.outputs
    assert (parked.key, parked.value) == (garbage.key, garbage.value)
    assert dead_letters.TRUNCATED not in dict(parked.headers)
