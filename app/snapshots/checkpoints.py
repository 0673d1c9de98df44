"""Table checkpoint snapshots: take them consistently, publish them safely, restore them first.

Taking: a RocksDB checkpoint (hard links of the SST files plus a flushed memtable) of one table
partition. The table databases hold only committed state (tables/store.py), so any moment between
two of the engine's transactions is consistent. The checkpoint carries the changelog offset
stored inside the database, so recovery after a restore replays only the records after it.

Publishing (off the event loop): tar the checkpoint, hash it, put the archive, then the manifest.
A snapshot exists only once its manifest does; a worker killed at any point leaves at worst a
`.partial` file or an archive without a manifest, which nothing loads and retention removes.

Restoring: when a worker opens a table partition it has no trusted local database for, the
newest snapshot of the live changelog (same topic id and cluster: a re-created topic's offsets
name other records) whose archive matches its manifest's size and sha256 is unpacked in its
place. A foreign, corrupt, partial or unknown-format snapshot is skipped with a warning and a
metric; with none left, recovery replays the whole changelog (tables/recovery.py).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tarfile
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from app import metrics
from app.errors import SnapshotError
from app.snapshots.blobs import BlobStore
from app.snapshots.manifest import Manifest, file_sha256
from app.topics.incarnation import Incarnation

log = logging.getLogger(__name__)
ORPHAN_AGE_S = 600.0  # an archive without manifest this old is a dead upload, not one in flight
# After the store failed to list at recovery, later recoveries skip it for this long: a store
# that times out must not hold up every partition of an assignment in turn.
UNREACHABLE_BACKOFF_S = 60.0


@dataclass(frozen=True, slots=True)
class Policy:
    interval_s: float  # a partition with writes is checkpointed at least this often (0: never)
    every_writes: int  # ... and after this many writes (0: no write-count trigger)
    keep: int  # newest snapshots kept per table partition


@dataclass(frozen=True, slots=True)
class Captured:
    """A checkpoint on local disk, waiting to be published."""

    manifest: Manifest
    folder: Path


class TableSnapshots:
    """One worker's table checkpoints: when they are due, taking, publishing, pruning, restoring."""

    def __init__(self, blobs: BlobStore, app_id: str, policy: Policy, worker: str = "") -> None:
        self.blobs = blobs
        self.app_id = app_id
        self.policy = policy
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}"
        self._writes: dict[tuple[str, int], int] = defaultdict(int)
        self._since: dict[tuple[str, int], float] = {}
        self._busy: set[tuple[str, int]] = set()
        self._swept: set[Path] = set()
        self._unreachable_until = 0.0  # monotonic

    @property
    def enabled(self) -> bool:
        return self.policy.interval_s > 0 or self.policy.every_writes > 0

    # -- when --------------------------------------------------------------------------------

    def note_writes(self, table: str, partition: int, count: int = 1) -> None:
        key = (table, partition)
        if key not in self._since:
            self._since[key] = (
                time.monotonic()
            )  # the first write since a checkpoint starts the clock
        self._writes[key] += count

    def due(self, table: str, partition: int, now: float | None = None) -> bool:
        key = (table, partition)
        writes = self._writes.get(key, 0)
        if writes == 0 or key in self._busy or not self.enabled:
            return False
        if self.policy.every_writes and writes >= self.policy.every_writes:
            return True
        elapsed = (now if now is not None else time.monotonic()) - self._since.get(key, 0.0)
        return self.policy.interval_s > 0 and elapsed >= self.policy.interval_s

    def forget(self, table: str, partition: int) -> None:
        """The partition left this worker: its counters start over if it comes back."""
        self._writes.pop((table, partition), None)
        self._since.pop((table, partition), None)

    # -- taking (on the engine's thread, between two transactions) ---------------------------

    def capture(
        self,
        table: str,
        partition: int,
        db: Any,
        changelog: tuple[str, Incarnation],
        changelog_offset: int,
        source_offsets: dict[str, int],
        staging: Path,
    ) -> Captured:
        """`staging` must be on the database's filesystem (the checkpoint hard-links its files)."""
        from rocksdict import Checkpoint  # noqa: PLC0415 - keep this module importable without it

        key = (table, partition)
        if staging not in self._swept:  # leftovers of a worker killed while taking a snapshot
            shutil.rmtree(staging, ignore_errors=True)
            self._swept.add(staging)
        staging.mkdir(parents=True, exist_ok=True)
        folder = staging / f"{table}-{partition}-{uuid.uuid4().hex}"
        started = time.perf_counter()
        Checkpoint(db).create_checkpoint(str(folder))  # same filesystem: hard links, fast
        metrics.SNAPSHOT_SECONDS.labels(table, "capture").observe(time.perf_counter() - started)
        self._writes.pop(key, None)
        self._since.pop(key, None)
        self._busy.add(key)
        changelog_topic, incarnation = changelog
        manifest = Manifest(
            app_id=self.app_id,
            table=table,
            partition=partition,
            changelog_topic=changelog_topic,
            cluster_id=incarnation.cluster_id,
            changelog_topic_id=incarnation.topic_id,
            changelog_offset=changelog_offset,
            source_offsets=dict(source_offsets),
            created_at=time.time(),
            worker=self.worker,
        )
        return Captured(manifest, folder)

    # -- publishing (in a thread) --------------------------------------------------------------

    def publish(self, captured: Captured) -> Manifest | None:
        """Archive, upload and prune; never raises (a failed snapshot only costs recovery time)."""
        manifest = captured.manifest
        key = (manifest.table, manifest.partition)
        archive = captured.folder.with_name(captured.folder.name + ".tar")
        started = time.perf_counter()
        try:
            with tarfile.open(archive, "w") as tar:  # SST blocks are compressed by RocksDB already
                tar.add(captured.folder, arcname=".")
            manifest = replace(manifest, size=archive.stat().st_size, sha256=file_sha256(archive))
            self.blobs.put(manifest.archive_key, archive)
            manifest_file = archive.with_suffix(".json")
            manifest_file.write_bytes(manifest.encode())
            self.blobs.put(manifest.manifest_key, manifest_file)  # the commit point
            metrics.SNAPSHOTS.labels(manifest.table).inc()
            metrics.SNAPSHOT_BYTES.labels(manifest.table).set(manifest.size)
            metrics.SNAPSHOT_SECONDS.labels(manifest.table, "publish").observe(
                time.perf_counter() - started
            )
            log.info(
                "snapshot %s (%d bytes, changelog offset %d)",
                manifest.manifest_key,
                manifest.size,
                manifest.changelog_offset,
            )
            self.prune(manifest.table, manifest.partition)
        except Exception:
            metrics.SNAPSHOT_FAILURES.labels(manifest.table, "publish").inc()
            log.exception("snapshot of %s[%d] failed; will try again", *key)
            return None
        else:
            return manifest
        finally:
            self._busy.discard(key)
            shutil.rmtree(captured.folder, ignore_errors=True)
            archive.unlink(missing_ok=True)
            archive.with_suffix(".json").unlink(missing_ok=True)

    def prune(self, table: str, partition: int) -> None:
        """Keep the newest `keep` snapshots; drop older ones and dead uploads."""
        prefix = f"{self.app_id}/{table}/{partition}/"
        keys = self.blobs.list(prefix)
        manifests = sorted(k for k in keys if k.endswith(".json"))
        for old in manifests[: -self.policy.keep]:
            self.blobs.delete(old)  # manifest first: the snapshot stops existing, then its data
            self.blobs.delete(old.removesuffix(".json") + ".tar")
        named = {k.removesuffix(".json") for k in manifests}
        now_ms = time.time() * 1000
        for archive in (k for k in keys if k.endswith(".tar")):
            stem = archive.removesuffix(".tar")
            if stem in named:
                continue
            created_ms = _created_ms(stem)
            if created_ms is not None and now_ms - created_ms > ORPHAN_AGE_S * 1000:
                self.blobs.delete(archive)

    # -- restoring (on the event loop, before Faust opens the partition) ----------------------

    def manifests(self, table: str, partition: int) -> list[Manifest]:
        """Readable manifests, newest first; unreadable ones are reported and skipped."""
        found: list[Manifest] = []
        if time.monotonic() < self._unreachable_until:
            metrics.SNAPSHOT_FAILURES.labels(table, "list").inc()
            return found  # failed a moment ago: do not wait for it again
        try:
            keys = self.blobs.list(f"{self.app_id}/{table}/{partition}/")
        except OSError as exc:  # the store is unreachable: recovery falls back to the changelog
            metrics.SNAPSHOT_FAILURES.labels(table, "list").inc()
            self._unreachable_until = time.monotonic() + UNREACHABLE_BACKOFF_S
            log.warning(
                "snapshots of %s[%d] not listed (%s): recovering from the changelog, and not "
                "asking the store again for %.0f s",
                table,
                partition,
                exc,
                UNREACHABLE_BACKOFF_S,
            )
            return found
        for key in reversed(keys):
            if not key.endswith(".json"):
                continue
            with tempfile.TemporaryDirectory(prefix="outbid-manifest-") as scratch:
                tmp = Path(scratch) / "manifest.json"
                try:
                    self.blobs.get(key, tmp)
                    found.append(Manifest.decode(tmp.read_bytes(), key))
                except (SnapshotError, OSError) as exc:
                    _reject(table, "manifest", exc)
        return found

    def restore(
        self, table: str, partition: int, changelog: tuple[str, Incarnation], dest: Path
    ) -> Manifest | None:
        """Unpack the newest valid snapshot of `table[partition]` at `dest` (which must not exist)
        taken from this very changelog: same topic name, topic id and cluster."""
        changelog_topic, incarnation = changelog
        for manifest in self.manifests(table, partition):
            foreign = (
                f"it is of {manifest.changelog_topic}, not {changelog_topic}"
                if manifest.changelog_topic != changelog_topic
                else incarnation.mismatch(manifest.cluster_id, manifest.changelog_topic_id)
            )
            if foreign is not None:
                _reject(table, "foreign", SnapshotError(f"{manifest.manifest_key}: {foreign}"))
                continue
            started = time.perf_counter()
            archive = dest.with_name(f"{dest.name}.{uuid.uuid4().hex}.tar")
            unpacked = dest.with_name(dest.name + ".restoring")
            try:
                self.blobs.get(manifest.archive_key, archive)
                manifest.check(archive)
                shutil.rmtree(unpacked, ignore_errors=True)
                with tarfile.open(archive) as tar:
                    tar.extractall(unpacked, filter="data")
                os.replace(unpacked, dest)
            except (SnapshotError, OSError, tarfile.TarError) as exc:
                _reject(table, "corrupt", exc)
                shutil.rmtree(unpacked, ignore_errors=True)
                continue
            finally:
                archive.unlink(missing_ok=True)
            age = max(0.0, time.time() - manifest.created_at)
            metrics.SNAPSHOT_RESTORES.labels(table).inc()
            metrics.SNAPSHOT_RESTORE_AGE.labels(table).set(age)
            metrics.SNAPSHOT_RESTORE_BYTES.labels(table).set(manifest.size)
            metrics.SNAPSHOT_SECONDS.labels(table, "restore").observe(time.perf_counter() - started)
            log.warning(
                "restored %s[%d] from snapshot %s (%.0f s old, %d bytes, changelog offset %d); "
                "recovery replays only the changelog after it",
                table,
                partition,
                manifest.manifest_key,
                age,
                manifest.size,
                manifest.changelog_offset,
            )
            return manifest
        return None


def _reject(table: str, reason: str, exc: Exception) -> None:
    metrics.SNAPSHOT_REJECTED.labels(table, reason).inc()
    log.warning("snapshot skipped (%s): %s; trying an older one, then the changelog", reason, exc)


def _created_ms(stem: str) -> int | None:
    try:
        return int(stem.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return None
