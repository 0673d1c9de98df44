"""A partition's tables on assignment: start from what is known good, replay only what follows.

For each table of the partition, in order of preference:
1. the local database, when it has one (it holds only committed state and its changelog offset);
2. else the newest valid table snapshot (app/snapshots/checkpoints.py), unpacked in its place;
3. else an empty database;
then the committed changelog records after the database's offset. A database or snapshot of another
incarnation of the topic (its recorded topic id or cluster id is not the live one: the topic was
deleted and re-created, or this is another cluster), or whose offset is at or beyond the
changelog's end, is discarded, whatever the offsets say. Never a full changelog replay when a
valid snapshot or local copy exists.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass

from app import metrics
from app.audit.reader import TopicReader
from app.snapshots.checkpoints import TableSnapshots
from tables import Table
from tables.partition import TABLES, PartitionTables
from tables.store import TableDB

log = logging.getLogger(__name__)
CHUNK = 10_000


@dataclass(frozen=True, slots=True)
class Recovered:
    table: str
    partition: int
    start: str  # "local", "snapshot" or "empty"
    replayed: int  # changelog records applied after the start
    seconds: float


def recover(
    tables: PartitionTables,
    reader: TopicReader,
    topic_of: Callable[[Table], str],
    snapshots: TableSnapshots | None,
) -> list[Recovered]:
    done = []
    for table in TABLES:
        started = time.perf_counter()
        db = tables.dbs[table.name]
        topic = topic_of(table)
        live = reader.incarnation(topic)
        end = reader.end_offset(topic, tables.partition)
        start = "local" if db.offset >= 0 else "empty"
        if start == "local":
            foreign = live.mismatch(*db.incarnation) or _beyond(db.offset, end)
            if foreign is not None:
                _discard(db, foreign)
                start = "empty"
        if start == "empty" and snapshots is not None:
            db.close()
            shutil.rmtree(db.path, ignore_errors=True)
            manifest = snapshots.restore(table.name, tables.partition, (topic, live), db.path)
            db.reopen()
            if manifest is not None:
                start = "snapshot"
                beyond = _beyond(db.offset, end)  # same topic, but truncated since
                if beyond is not None:
                    metrics.SNAPSHOT_REJECTED.labels(table.name, "foreign").inc()
                    _discard(db, f"the snapshot's {beyond}")
                    start = "empty"
        db.claim(live.cluster_id, live.topic_id)
        replayed = _replay(db, reader, topic, tables.partition, end)
        metrics.RECOVERY_RECORDS.labels(table.name).inc(replayed)
        done.append(
            Recovered(table.name, tables.partition, start, replayed, time.perf_counter() - started)
        )
    tables.forget_cache()
    log.info(
        "partition %d recovered: %s",
        tables.partition,
        ", ".join(f"{r.table} from {r.start} + {r.replayed} record(s)" for r in done),
    )
    return done


def _beyond(offset: int, end: int) -> str | None:
    return f"offset {offset} is beyond the changelog's end {end}" if offset >= end else None


def _discard(db: TableDB, why: str) -> None:
    log.warning("%s discarded (%s): state of another incarnation of the topic", db.path, why)
    db.wipe()


def _replay(db: TableDB, reader: TopicReader, topic: str, partition: int, end: int) -> int:
    """Apply the committed changelog records after the database's offset, up to `end`."""
    chunk: list[tuple[bytes, bytes | None]] = []
    replayed, last = 0, db.offset
    for record in reader.read(topic, partition, end, start=db.offset + 1):
        last = record.offset
        if record.key is not None:
            chunk.append((record.key, record.value))
        if len(chunk) >= CHUNK:
            db.write(chunk, last)
            replayed += len(chunk)
            chunk = []
    if last > db.offset:
        db.write(chunk, last)
        replayed += len(chunk)
    return replayed
