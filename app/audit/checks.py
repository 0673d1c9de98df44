"""The invariants, checked over the records of one partition (pure: no Kafka here).

All topics of the auctions group are co-partitioned and keyed by auction id, so everything
about one auction - its commands, events and views - lives in one partition number: the audit
holds one partition in memory at a time.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import orjson

from app import headers
from app.audit.findings import Findings
from app.audit.reader import Record
from app.domain import (
    AuctionState,
    AuctionStatus,
    HighestBid,
    apply,
    decode_command,
    decode_event,
    decode_state,
    decode_view,
    evolve,
)
from app.errors import InvalidMessage, SequenceError, SnapshotError
from app.snapshots import aggregates as aggregate_snapshots
from app.topics.incarnation import Incarnation

# Findings is re-exported: app/chaos/result.py imports it from here.
__all__ = [
    "CommandLedger",
    "Findings",
    "PartitionAudit",
    "coordinate",
    "digest",
    "normalised_view",
    "settle_ledger",
    "settle_redis_keys",
    "version_of",
]

REROUTED_FROM = headers.REROUTED_FROM


def coordinate(topic: str, partition: int, offset: int) -> str:
    return f"{topic}/{partition}/{offset}"


@dataclass
class CommandLedger:
    """What the commands topic says must have happened outside their own partition."""

    expect_dead_letter: set[str] = field(default_factory=set)  # source coordinates
    expect_reroute: set[str] = field(default_factory=set)
    rerouted_sources: Counter[str] = field(default_factory=Counter)  # source -> copies of it
    rerouted_copies: set[str] = field(default_factory=set)  # coordinates of the copies


class PartitionAudit:
    def __init__(
        self,
        partition: int,
        commands_topic: str,
        findings: Findings,
        ledger: CommandLedger,
        max_recent: int,
    ) -> None:
        self.partition = partition
        self.commands_topic = commands_topic
        self.findings = findings
        self.ledger = ledger
        self.max_recent = max_recent
        self.expected: dict[str, list[str]] = defaultdict(list)  # auction -> command ids, in order
        self.committed_offset = 0  # the group's committed offset of this commands partition (live)
        self.states: dict[str, AuctionState] = {}
        self.views: dict[str, HighestBid] = {}
        self.decided: dict[str, set[str]] = defaultdict(set)  # auction -> command ids with events
        self.event_ids: set[str] = set()
        self.pending: set[str] = (
            set()
        )  # command ids at or after the group's committed offset (live)
        self.live = False
        # auction -> its snapshots not checked yet, by the seq they were taken at (every one is
        # checked, not only the newest: a wrong intermediate snapshot is a problem too)
        self.pending_snapshots: dict[str, dict[int, list[aggregate_snapshots.AggregateSnapshot]]]
        self.pending_snapshots = {}

    # --- commands ------------------------------------------------------------------
    def command(self, record: Record) -> None:
        f = self.findings
        f.counts["commands"] += 1
        f.examined["command_outcomes"] += 1
        source = coordinate(self.commands_topic, record.partition, record.offset)
        if REROUTED_FROM in record.headers:
            f.counts["commands_rerouted_copies"] += 1
            self.ledger.rerouted_sources[
                record.headers[REROUTED_FROM].decode(errors="replace")
            ] += 1
            self.ledger.rerouted_copies.add(source)
        settled = not self.live or record.offset < self.committed_offset
        try:
            command = decode_command(record.value if record.value is not None else b"")
        except InvalidMessage:
            if settled:
                self.ledger.expect_dead_letter.add(source)
            f.counts["commands_invalid"] += 1
            return
        if self.live and record.offset >= self.committed_offset:
            self.pending.add(command.command_id)
        if record.key != command.auction_id.encode():
            if settled:
                self.ledger.expect_reroute.add(source)
            f.counts["commands_unkeyed"] += 1
            return
        self.expected[command.auction_id].append(command.command_id)

    # --- events --------------------------------------------------------------------
    def event(self, record: Record) -> None:
        f = self.findings
        f.counts["events"] += 1
        f.examined["events_well_formed"] += 1
        try:
            event = decode_event(record.value if record.value is not None else b"")
        except InvalidMessage as exc:
            f.problem(
                "undecodable_event", f"auction-events[{record.partition}]@{record.offset}: {exc}"
            )
            return
        f.examined["no_duplicate_events"] += 1
        f.examined["seq_contiguous"] += 1
        if event.event_id in self.event_ids:
            f.problem(
                "duplicate_event_id",
                f"{event.event_id} ({event.auction_id} seq {event.seq}) again at offset {record.offset}",
            )
        self.event_ids.add(event.event_id)
        if record.key != event.auction_id.encode():
            f.problem("event_key_mismatch", f"{event.event_id} at offset {record.offset}")
        state = self.states.get(event.auction_id) or AuctionState.empty(event.auction_id)
        if event.seq <= state.version:
            f.problem(
                "duplicate_event" if event.seq == state.version else "seq_out_of_order",
                f"{event.auction_id} seq {event.seq} (event_id {event.event_id}) after seq "
                f"{state.version}, at offset {record.offset}",
            )
            return
        if event.seq != state.version + 1:
            f.problem(
                "seq_gap",
                f"{event.auction_id}: seq {state.version} then {event.seq} at offset {record.offset}",
            )
            state = _replace_version(state, event.seq - 1)
        try:
            self.states[event.auction_id] = evolve(state, event, max_recent=self.max_recent)
        except SequenceError as exc:  # pragma: no cover - guarded above
            f.problem("seq_gap", str(exc))
        self.views[event.auction_id] = apply(self.views.get(event.auction_id), event)
        self._check_snapshot(event.auction_id, record.offset)
        self.decided[event.auction_id].add(event.command_id)
        f.counts[f"events_{event.TYPE}"] += 1

    # --- aggregate snapshots: each equals the fold at its seq ------------------------
    def snapshots(self, records: Iterable[Record], events: Incarnation, events_end: int) -> None:
        """Read before the events: the latest snapshot of each auction, checked during the fold.
        `events`: the live event log's incarnation; a snapshot of another one names offsets of
        other events (a re-created topic) and is a problem of its own."""
        for record in records:
            if record.key is None or record.value is None:
                continue
            self.findings.counts["aggregate_snapshots"] += 1
            self.findings.examined["aggregate_snapshots"] += 1
            where = f"auction-snapshots[{self.partition}]@{record.offset}"
            try:
                snapshot = aggregate_snapshots.decode(record.value)
            except SnapshotError as exc:
                self.findings.problem("aggregate_snapshot_unreadable", f"{where}: {exc}")
                continue
            foreign = aggregate_snapshots.foreign_to(snapshot, events, events_end)
            if foreign is not None:
                self.findings.problem(
                    "aggregate_snapshot_foreign", f"{where} (auction {record.key!r}): {foreign}"
                )
                continue
            by_seq = self.pending_snapshots.setdefault(record.key.decode(), {})
            by_seq.setdefault(snapshot.state.version, []).append(snapshot)

    def _check_snapshot(self, auction_id: str, offset: int) -> None:
        by_seq = self.pending_snapshots.get(auction_id)
        if not by_seq:
            return
        state = self.states[auction_id]
        due = by_seq.pop(state.version, [])
        if not by_seq:
            del self.pending_snapshots[auction_id]
        for snapshot in due:
            if (
                _state_json(snapshot.state) != _state_json(state)
                or snapshot.events_offset != offset
            ):
                self.findings.problem(
                    "aggregate_snapshot_differs",
                    f"{auction_id} seq {state.version}: snapshot (event offset "
                    f"{snapshot.events_offset}) != fold (event offset {offset})",
                )
            else:
                self.findings.counts["aggregate_snapshots_checked"] += 1

    def settle_snapshots(self) -> None:
        for auction_id, by_seq in sorted(self.pending_snapshots.items()):
            ends_at = self.states.get(auction_id, AuctionState.empty(auction_id)).version
            for seq in sorted(by_seq):
                for _snapshot in by_seq[seq]:
                    self.findings.problem(
                        "aggregate_snapshot_without_events",
                        f"{auction_id}: snapshot at seq {seq}, the log ends at seq {ends_at}",
                    )

    # --- after both topics: every command decided exactly once ---------------------
    def settle_commands(self) -> None:
        f = self.findings
        pending = self.pending
        for auction_id, command_ids in self.expected.items():
            seen: set[str] = set()
            decided = self.decided.get(auction_id, set())
            for command_id in command_ids:
                if command_id in seen:
                    f.counts["duplicates_absorbed"] += 1
                    continue
                seen.add(command_id)
                if command_id in decided:
                    f.counts["commands_decided"] += 1
                elif command_id in pending:
                    f.counts["commands_pending"] += 1
                else:
                    f.problem("command_without_decision", f"{auction_id}: command {command_id}")
            for command_id in decided - seen:
                f.counts["events_without_command"] += 1  # e.g. the command expired from retention
                del command_id

    # --- projections: the live table equals the fold -------------------------------
    def compare_views(self, table: str, records: Iterable[Record]) -> None:
        live = _latest(records)
        fold = {
            aid.encode(): orjson.dumps(v.to_json_dict(), option=orjson.OPT_SORT_KEYS)
            for aid, v in self.views.items()
        }
        self._compare(table, {key: normalised_view(raw) for key, raw in live.items()}, fold)

    def compare_redis(self, stored: dict[str, bytes | None]) -> None:
        """The Redis read model: one `view` per auction, equal to the fold (see settle_redis_keys)."""
        live = {}
        for auction_id, raw in stored.items():
            if raw is None:
                continue
            try:
                live[auction_id.encode()] = orjson.dumps(
                    orjson.loads(raw), option=orjson.OPT_SORT_KEYS
                )
            except orjson.JSONDecodeError:
                live[auction_id.encode()] = b"undecodable"
        fold = {
            aid.encode(): orjson.dumps(v.to_json_dict(), option=orjson.OPT_SORT_KEYS)
            for aid, v in self.views.items()
            # Redis need not hold an auction never opened (app/readmodel.py `stored`).
            if v.status is not AuctionStatus.NONE or live.get(aid.encode()) is not None
        }
        self._compare("redis", live, fold)

    def compare_aggregates(self, table: str, records: Iterable[Record]) -> None:
        live = _latest(records)
        fold = {aid.encode(): _state_json(s) for aid, s in self.states.items()}
        live_norm = {}
        for key, raw in live.items():
            try:
                live_norm[key] = _state_json(decode_state(raw))
            except InvalidMessage as exc:
                live_norm[key] = f"undecodable: {exc}".encode()
        self._compare(table, live_norm, fold)

    def _compare(self, table: str, live: dict[bytes, bytes], fold: dict[bytes, bytes]) -> None:
        f = self.findings
        f.counts[f"{table}_keys"] += len(live)
        f.examined[table] += len(live.keys() | fold.keys())
        f.digests[table][self.partition] = (digest(live), digest(fold))
        differing = sorted(k for k in live.keys() | fold.keys() if live.get(k) != fold.get(k))
        for key in differing:
            if self.live and version_of(live.get(key)) < version_of(fold.get(key)):
                f.counts[f"{table}_in_flight"] += 1  # the projection has not caught up yet
                continue
            f.problem(
                f"{table}_differs_from_fold",
                f"partition {self.partition} key {key.decode(errors='replace')}: "
                f"live {live.get(key, b'(missing)').decode(errors='replace')[:300]} != "
                f"fold {fold.get(key, b'(missing)').decode(errors='replace')[:300]}",
            )


def settle_ledger(ledger: CommandLedger, dead_letter_sources: set[str], findings: Findings) -> None:
    rerouted = set(ledger.rerouted_sources)
    for source in sorted(ledger.expect_dead_letter - dead_letter_sources):
        findings.problem("invalid_command_not_dead_lettered", source)
    for source in sorted(ledger.expect_reroute - rerouted):
        findings.problem("unkeyed_command_not_rerouted", source)
    for source, copies in sorted(ledger.rerouted_sources.items()):
        if copies > 1:
            findings.problem("command_rerouted_twice", f"{source} re-routed {copies} times")
        if source in ledger.rerouted_copies:  # a copy goes out under its auction's key
            findings.problem(
                "command_rerouted_twice", f"{source} is a re-routed copy and was re-routed again"
            )
    findings.counts["dead_lettered_as_expected"] += len(
        ledger.expect_dead_letter & dead_letter_sources
    )
    findings.counts["rerouted_as_expected"] += len(ledger.expect_reroute & rerouted)


def settle_redis_keys(
    stored: Mapping[str, str], audited: set[str], findings: Findings, *, live: bool
) -> None:
    """Every auction hash in Redis (auction id -> its key) is an auction of the audited log."""
    for auction_id in sorted(stored.keys() - audited):
        findings.examined["redis"] += 1
        if live:  # its first events may be past the end offsets the audit read
            findings.counts["redis_in_flight"] += 1
            continue
        findings.problem(
            "redis_key_without_events",
            f"{stored[auction_id]}: auction {auction_id} has no event in auction-events",
        )


def normalised_view(raw: bytes) -> bytes:
    """A stored view as canonical JSON (sorted keys), comparable byte for byte with a fold."""
    try:
        return orjson.dumps(decode_view(raw).to_json_dict(), option=orjson.OPT_SORT_KEYS)
    except InvalidMessage as exc:
        return f"undecodable: {exc}".encode()


def version_of(raw: bytes | None) -> int:
    """The seq (views) or version (aggregates) of a stored JSON value; -1 when unreadable."""
    if raw is None:
        return 0
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return -1
    value = doc.get("seq", doc.get("version", 0)) if isinstance(doc, dict) else 0
    return value if isinstance(value, int) else -1


def _latest(records: Iterable[Record]) -> dict[bytes, bytes]:
    latest: dict[bytes, bytes] = {}
    for record in records:
        if record.key is None:
            continue
        if record.value is None:
            latest.pop(record.key, None)  # tombstone
        else:
            latest[record.key] = record.value
    return latest


def _state_json(state: AuctionState) -> bytes:
    from app.domain import encode_state  # noqa: PLC0415 - keep the import list above short

    return orjson.dumps(orjson.loads(encode_state(state)), option=orjson.OPT_SORT_KEYS)


def digest(entries: dict[bytes, bytes]) -> str:
    h = hashlib.sha256()
    for key in sorted(entries):
        h.update(key + b"\0" + entries[key] + b"\n")
    return h.hexdigest()[:16]


def _replace_version(state: AuctionState, version: int) -> AuctionState:
    from dataclasses import replace  # noqa: PLC0415

    return replace(state, version=version)
