"""Rebuild the highest-bid projection from the event log into a fresh table version.

Per partition: optionally start from the newest valid table snapshot (its manifest says which
`auction-events` offset it reflects), fold the events after it up to the end offsets read at the
start, and write the views into a new RocksDB per partition. The result is compared, key by key,
with the live projection (its changelog), and digested the way `outbid verify` digests tables.
A rebuilt version is how a changed projection is checked before it replaces the live one.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rocksdict import Options, Rdict, WriteBatch

from app.audit.checks import digest, normalised_view, version_of
from app.audit.reader import TopicReader
from app.domain import HighestBid, apply, decode_event, decode_view, encode_view
from app.settings import Settings
from app.snapshots.blobs import blob_store
from app.snapshots.checkpoints import Policy, TableSnapshots
from app.snapshots.manifest import Manifest
from app.topics.spec import EVENTS, HIGHEST_BIDS_CHANGELOG
from tables.store import META_KEYS

TABLE = "highest_bids"
Advance = Callable[[int], None]  # events folded since the last call


@dataclass
class PartitionResult:
    partition: int
    snapshot: str | None  # manifest key of the snapshot started from
    start_offset: int
    end_offset: int
    events: int = 0
    keys: int = 0
    digest: str = ""
    live_digest: str = ""
    equal: int = 0
    live_behind: int = 0  # the live projection has not applied the newest events yet
    live_ahead: int = 0  # events arrived after the rebuild's bound
    differ: list[str] = field(default_factory=list)


@dataclass
class RebuildReport:
    path: Path
    partitions: list[PartitionResult]
    seconds: float = 0.0

    @property
    def events(self) -> int:
        return sum(p.events for p in self.partitions)

    @property
    def differences(self) -> int:
        return sum(len(p.differ) for p in self.partitions)

    @property
    def digest(self) -> str:
        return digest({str(p.partition).encode(): p.digest.encode() for p in self.partitions})

    def as_json(self) -> dict[str, object]:
        return {
            "table": TABLE,
            "path": str(self.path),
            "seconds": round(self.seconds, 3),
            "events": self.events,
            "digest": self.digest,
            "differences": self.differences,
            "partitions": [vars(p) for p in self.partitions],
        }


def plan(settings: Settings, reader: TopicReader, *, from_snapshots: bool) -> list[PartitionResult]:
    """Where each partition starts (after its newest snapshot, or at 0) and ends (its end now)."""
    events = settings.topic(EVENTS)
    service = _snapshots(settings)
    results = []
    for p in reader.partitions(events):
        result = PartitionResult(p, None, 0, reader.end_offset(events, p))
        for manifest in service.manifests(TABLE, p) if from_snapshots else []:
            start = _start(manifest, events, result.end_offset)
            if start is not None:
                result.snapshot, result.start_offset = manifest.manifest_key, start
                break
        results.append(result)
    return results


def _start(manifest: Manifest, events: str, end_offset: int) -> int | None:
    """Where folding `events` starts after this snapshot, or None when the snapshot ends past
    the event log being read (it cannot serve)."""
    start = manifest.source_offsets.get(events, 0)
    return start if start <= end_offset else None


def _snapshots(settings: Settings) -> TableSnapshots:
    return TableSnapshots(
        blob_store(settings),
        settings.group_id,
        Policy(interval_s=0, every_writes=0, keep=settings.snapshot_keep),
    )


def rebuild(
    settings: Settings,
    reader: TopicReader,
    partitions: list[PartitionResult],
    out: Path,
    advance: Advance | None = None,
) -> RebuildReport:
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    service = _snapshots(settings)
    changelog = settings.topic(HIGHEST_BIDS_CHANGELOG)
    for result in partitions:
        path = out / f"{TABLE}-{result.partition}.db"
        shutil.rmtree(path, ignore_errors=True)
        if result.snapshot is not None:
            live = (changelog, reader.incarnation(changelog))
            restored = service.restore(TABLE, result.partition, live, path)
            # A running worker may publish a newer snapshot after the plan: restore takes the
            # newest valid one, which serves as well if it ends inside the event log read here.
            start = (
                _start(restored, settings.topic(EVENTS), result.end_offset) if restored else None
            )
            if restored is None or start is None:
                result.snapshot, result.start_offset = None, 0  # rejected: from the start
                shutil.rmtree(path, ignore_errors=True)
            else:
                result.snapshot, result.start_offset = restored.manifest_key, start
        _fold_partition(settings, reader, result, path, advance)
        _compare_live(reader, changelog, result, path)
    return RebuildReport(out, partitions, time.perf_counter() - started)


def _fold_partition(
    settings: Settings,
    reader: TopicReader,
    result: PartitionResult,
    path: Path,
    advance: Advance | None,
) -> None:
    db = Rdict(str(path), options=Options(raw_mode=True))
    try:
        views: dict[bytes, HighestBid] = {}
        pending = 0
        for record in reader.read(
            settings.topic(EVENTS), result.partition, result.end_offset, start=result.start_offset
        ):
            if record.key is None or record.value is None:
                continue
            event = decode_event(record.value)
            view = views.get(record.key)
            if view is None:
                stored = db.get(record.key)
                view = decode_view(stored) if stored is not None else None
            views[record.key] = apply(view, event)
            result.events += 1
            pending += 1
            if advance is not None and pending >= 1000:
                advance(pending)
                pending = 0
        if advance is not None and pending:
            advance(pending)
        batch = WriteBatch(raw_mode=True)
        for key, view in views.items():
            batch.put(key, encode_view(view))
        db.write(batch)
        db.flush()
    finally:
        db.close()


def _compare_live(reader: TopicReader, changelog: str, result: PartitionResult, path: Path) -> None:
    live: dict[bytes, bytes] = {}
    end = reader.end_offset(changelog, result.partition)
    for record in reader.read(changelog, result.partition, end):
        if record.key is None:
            continue
        if record.value is None:
            live.pop(record.key, None)
        else:
            live[record.key] = record.value
    db = Rdict(str(path), options=Options(raw_mode=True))
    try:
        items: Any = db.items()  # raw mode: bytes keys and values
        rebuilt = {k: normalised_view(v) for k, v in items if k not in META_KEYS}
    finally:
        db.close()
    live_norm = {k: normalised_view(v) for k, v in live.items()}
    result.keys, result.digest, result.live_digest = (
        len(rebuilt),
        digest(rebuilt),
        digest(live_norm),
    )
    for key in sorted(rebuilt.keys() | live_norm.keys()):
        mine, theirs = rebuilt.get(key), live_norm.get(key)
        if mine == theirs:
            result.equal += 1
        elif version_of(theirs) < version_of(mine):
            result.live_behind += 1
        elif version_of(theirs) > version_of(mine):
            result.live_ahead += 1
        else:
            result.differ.append(key.decode(errors="replace"))
