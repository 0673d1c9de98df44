"""Wiring of table snapshots into a worker: when checkpoints are captured, and by whom.

Two moments hold only committed state: right after a partition's transaction committed (the
commit hook, app/eos.py, under the processing gate), and any time a partition has had no write
since its last commit (the idle timer, which takes the gate itself). The capture is a RocksDB
checkpoint (fast, on the event loop); archiving and uploading run in a thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

import faust
from faust.types import TP

from app import eos
from app.settings import Settings
from app.snapshots.blobs import DirectoryBlobStore
from app.snapshots.checkpoints import Captured, Policy, TableSnapshots
from tables import store as table_store

IDLE_CHECK_S = 5.0
STAGING = ".snapshot-staging"  # next to the table databases: checkpoints hard-link their files


def install(app: faust.App, settings: Settings) -> TableSnapshots | None:
    """Configure the store's snapshot service from settings; None when snapshots are off."""
    policy = Policy(
        interval_s=settings.snapshot_interval_s,
        every_writes=settings.snapshot_every_writes,
        keep=settings.snapshot_keep,
    )
    exactly_once = settings.processing_guarantee == "exactly_once"
    if not (policy.interval_s or policy.every_writes):
        table_store.configure(None, exactly_once=exactly_once)
        return None
    service = TableSnapshots(
        DirectoryBlobStore(settings.snapshot_root), app_id=settings.faust_app_id, policy=policy
    )
    table_store.configure(service, exactly_once=exactly_once)
    eos.COMMIT_HOOKS.append(after_commit)

    @app.timer(IDLE_CHECK_S, name="snapshot-idle-partitions")  # type: ignore[untyped-decorator]
    async def snapshot_idle_partitions() -> None:
        async with eos.GATE.lock:
            captured = capture_due(app, {})
        publish_in_background(captured)

    return service


def after_commit(app: Any, committed: Mapping[TP, int]) -> None:
    publish_in_background(capture_due(app, committed))


def capture_due(app: Any, committed: Mapping[TP, int]) -> list[Captured]:
    """Checkpoint every due table partition that holds only committed state.

    Runs on the event loop with the processing gate held: right after a commit (`committed` =
    the source offsets just committed), or from the idle timer (`committed` empty).
    """
    service = table_store.snapshots
    if service is None:
        return []
    sources: dict[int, dict[str, int]] = {}
    for tp, offset in committed.items():
        sources.setdefault(tp.partition, {})[tp.topic] = offset
    captured = []
    for store in _outbid_stores(app):
        store.dirty -= set(sources)
        for partition, db in list(store._dbs.items()):
            if partition in store.dirty or not service.due(store.table.name, partition):
                continue
            captured.append(
                service.capture(
                    store.table.name,
                    partition,
                    db,
                    store.changelog_name,
                    store.changelog_offset(partition),
                    sources.get(partition, {}),
                    store.partition_path(partition).parent / STAGING,
                )
            )
    return captured


def publish_in_background(captured: Iterable[Captured]) -> None:
    """Archive and upload off the event loop; the checkpoints are immutable folders by now."""
    service = table_store.snapshots
    if service is None:
        return
    loop = asyncio.get_running_loop()
    for item in captured:
        loop.run_in_executor(None, service.publish, item)


def _outbid_stores(app: Any) -> list[table_store.OutbidStore]:
    return [t.data for t in app.tables.values() if isinstance(t.data, table_store.OutbidStore)]
