"""Per-auction aggregate snapshots on the compacted `auction-snapshots` topic.

Every N events of an auction the command handler writes its state with the seq and the
`auction-events` offset of the last event it reflects, in the same transaction as the events.
Loading an aggregate = its latest snapshot + the events after that offset; a snapshot that is
unreadable, of a newer format, or of another incarnation of `auction-events` (its topic id or
cluster id is not the live one: the offset it names would point at other events) is not guessed
at: the aggregate is folded from the event log, with a warning and a metric.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson

from app import metrics
from app.audit.reader import TopicReader
from app.domain import AuctionState, decode_event, decode_state, encode_state, evolve
from app.errors import InvalidMessage, SnapshotError
from app.snapshots.manifest import versioned_json
from app.topics.incarnation import Incarnation
from app.topics.partitioner import partition_for

log = logging.getLogger(__name__)
FORMAT = 1


@dataclass(frozen=True, slots=True)
class AggregateSnapshot:
    state: AuctionState
    events_partition: int
    events_offset: int  # offset of the last event the state reflects
    cluster_id: str = ""  # the incarnation of auction-events it was taken from ("": older outbid)
    events_topic_id: str = ""


@dataclass(frozen=True, slots=True)
class LoadedAggregate:
    state: AuctionState
    snapshot: AggregateSnapshot | None
    events_replayed: int


def due(old_version: int, new_version: int, every: int) -> bool:
    """True when the events just appended crossed a multiple of `every`."""
    return every > 0 and new_version // every > old_version // every


def encode(
    state: AuctionState, events_partition: int, events_offset: int, events: Incarnation
) -> bytes:
    return orjson.dumps(
        {
            "format": FORMAT,
            "auction_id": state.auction_id,
            "seq": state.version,
            "events_partition": events_partition,
            "events_offset": events_offset,
            "cluster_id": events.cluster_id,
            "events_topic_id": events.topic_id,
            "state": orjson.Fragment(encode_state(state)),
        }
    )


def decode(raw: bytes) -> AggregateSnapshot:
    doc: Any = versioned_json(raw, "aggregate snapshot", FORMAT)
    try:
        state = decode_state(orjson.dumps(doc["state"]))
        snapshot = AggregateSnapshot(
            state,
            int(doc["events_partition"]),
            int(doc["events_offset"]),
            str(doc.get("cluster_id", "")),
            str(doc.get("events_topic_id", "")),
        )
    except (KeyError, TypeError, ValueError, InvalidMessage) as exc:
        raise SnapshotError(f"aggregate snapshot without a usable state: {exc}") from exc
    if state.version != doc.get("seq"):
        raise SnapshotError(f"aggregate snapshot seq {doc.get('seq')} != state {state.version}")
    return snapshot


def foreign_to(snapshot: AggregateSnapshot, live: Incarnation, end: int) -> str | None:
    """Why `snapshot` is not of the live event log (whose partition ends at `end`), or None."""
    foreign = live.mismatch(snapshot.cluster_id, snapshot.events_topic_id)
    if foreign is None and snapshot.events_offset >= end:
        foreign = f"its event offset {snapshot.events_offset} is beyond the log's end {end}"
    return foreign


def load(
    reader: TopicReader,
    snapshots_topic: str,
    events_topic: str,
    auction_id: str,
    *,
    max_recent: int,
) -> LoadedAggregate:
    """One aggregate from its latest snapshot plus the events after it (or from all events)."""
    partition = partition_for(auction_id.encode(), len(reader.partitions(events_topic)))
    key = auction_id.encode()
    end = reader.end_offset(events_topic, partition)
    snapshot = None
    for record in reader.read(
        snapshots_topic, partition, reader.end_offset(snapshots_topic, partition)
    ):
        if record.key == key and record.value is not None:
            try:
                snapshot = decode(record.value)
            except SnapshotError as exc:
                metrics.AGGREGATE_SNAPSHOT_FALLBACKS.labels("unreadable").inc()
                log.warning("%s: %s; folding the event log instead", auction_id, exc)
                snapshot = None
    if snapshot is not None:
        foreign = foreign_to(snapshot, reader.incarnation(events_topic), end)
        if foreign is not None:
            metrics.AGGREGATE_SNAPSHOT_FALLBACKS.labels("foreign").inc()
            log.warning(
                "%s: snapshot of another %s (%s); folding the event log instead",
                auction_id,
                events_topic,
                foreign,
            )
            snapshot = None
    state = snapshot.state if snapshot else AuctionState.empty(auction_id)
    start = snapshot.events_offset + 1 if snapshot else 0
    replayed = 0
    for record in reader.read(events_topic, partition, end, start=start):
        if record.key != key or record.value is None:
            continue
        event = decode_event(record.value)
        if event.seq <= state.version:
            continue  # already in the snapshot
        state = evolve(state, event, max_recent=max_recent)
        replayed += 1
    return LoadedAggregate(state, snapshot, replayed)
