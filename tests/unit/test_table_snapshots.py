"""Table snapshots without a broker: blob store, manifests, policy, publish, prune, restore."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from rocksdict import Options, Rdict

from app.errors import SnapshotError
from app.snapshots.blobs import DirectoryBlobStore
from app.snapshots.checkpoints import Policy, TableSnapshots
from app.snapshots.manifest import Manifest
from app.topics.incarnation import Incarnation

OFFSET_KEY = b"__faust\0offset__"
LIVE = Incarnation("cluster-1", "topic-id-1")
CHANGELOG = ("app-t-changelog", LIVE)


def make_db(path: Path, items: dict[bytes, bytes], offset: int) -> Rdict:
    db = Rdict(str(path), options=Options(raw_mode=True))
    for key, value in items.items():
        db[key] = value
    db[OFFSET_KEY] = str(offset).encode()
    STAGING[id(db)] = path.parent / "staging"
    return db


STAGING: dict[int, Path] = {}


def db_staging(db: Rdict) -> Path:
    return STAGING[id(db)]


def service(
    tmp_path: Path, *, keep: int = 2, every: int = 3, interval: float = 0
) -> TableSnapshots:
    return TableSnapshots(
        DirectoryBlobStore(tmp_path / "store"),
        "app",
        Policy(interval_s=interval, every_writes=every, keep=keep),
    )


def take(snaps: TableSnapshots, db: Rdict, offset: int) -> Manifest:
    captured = snaps.capture("t", 0, db, CHANGELOG, offset, {"src": offset + 1}, db_staging(db))
    published = snaps.publish(captured)
    assert published is not None
    return published


def read(path: Path) -> dict[bytes, bytes]:
    db = Rdict(str(path), options=Options(raw_mode=True))
    try:
        return dict(db.items())
    finally:
        db.close()


def test_policy_counts_writes_and_time(tmp_path: Path) -> None:
    snaps = service(tmp_path, every=3, interval=10)
    assert not snaps.due("t", 0)  # nothing written: nothing to snapshot
    snaps.note_writes("t", 0, 2)
    assert not snaps.due("t", 0)
    assert snaps.due("t", 0, now=time.monotonic() + 11)  # old enough
    snaps.note_writes("t", 0)
    assert snaps.due("t", 0)
    snaps.forget("t", 0)
    assert not snaps.due("t", 0)


def test_publish_then_restore_round_trip(tmp_path: Path) -> None:
    snaps = service(tmp_path)
    db = make_db(tmp_path / "live", {b"a": b"1", b"b": b"2"}, offset=41)
    snaps.note_writes("t", 0, 5)
    manifest = take(snaps, db, 41)
    assert (manifest.changelog_offset, manifest.source_offsets) == (41, {"src": 42})
    assert manifest.size > 0
    assert len(manifest.sha256) == 64
    assert not snaps.due("t", 0)  # counters restart after a capture
    db.close()
    assert not list((tmp_path / "staging").glob("*"))  # nothing left behind

    dest = tmp_path / "restored"
    restored = snaps.restore("t", 0, CHANGELOG, dest)
    assert restored == manifest
    assert read(dest) == {b"a": b"1", b"b": b"2", OFFSET_KEY: b"41"}


def test_restore_takes_the_newest_valid_and_skips_corrupt(tmp_path: Path) -> None:
    snaps = service(tmp_path, keep=5)
    db = make_db(tmp_path / "live", {b"a": b"1"}, offset=1)
    old = take(snaps, db, 1)
    db[b"a"] = b"2"
    db[OFFSET_KEY] = b"2"
    newer = take(snaps, db, 2)
    db.close()
    archive = tmp_path / "store" / newer.archive_key
    archive.write_bytes(archive.read_bytes()[:100])  # truncated upload
    dest = tmp_path / "restored"
    assert snaps.restore("t", 0, CHANGELOG, dest) == old
    assert read(dest)[b"a"] == b"1"


def test_no_valid_snapshot_means_changelog_recovery(tmp_path: Path) -> None:
    snaps = service(tmp_path)
    db = make_db(tmp_path / "live", {b"a": b"1"}, offset=1)
    manifest = take(snaps, db, 1)
    db.close()
    archive = tmp_path / "store" / manifest.archive_key
    data = bytearray(archive.read_bytes())
    data[-1] ^= 1  # same size, wrong checksum
    archive.write_bytes(bytes(data))
    dest = tmp_path / "restored"
    assert snaps.restore("t", 0, CHANGELOG, dest) is None
    assert not dest.exists()
    assert (
        snaps.restore("t", 0, ("other-changelog", LIVE), dest) is None
    )  # never another topic's state


@pytest.mark.parametrize(
    ("live", "why"),
    [
        (
            Incarnation("cluster-1", "topic-id-2"),
            "topic id topic-id-1, the live topic is topic-id-2",
        ),
        (Incarnation("cluster-2", "topic-id-1"), "cluster cluster-1, this is cluster cluster-2"),
    ],
)
def test_a_snapshot_of_another_topic_incarnation_is_rejected_as_foreign(
    tmp_path: Path, live: Incarnation, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    from app import metrics  # noqa: PLC0415

    snaps = service(tmp_path)
    db = make_db(tmp_path / "live", {b"a": b"1"}, offset=1)
    take(snaps, db, 1)
    db.close()
    rejected = metrics.SNAPSHOT_REJECTED.labels("t", "foreign")
    before = rejected._value.get()
    assert snaps.restore("t", 0, ("app-t-changelog", live), tmp_path / "restored") is None
    assert rejected._value.get() == before + 1
    assert why in caplog.text  # the log line names the mismatch
    assert not (tmp_path / "restored").exists()


def test_a_snapshot_without_a_topic_id_is_foreign(tmp_path: Path) -> None:
    snaps = service(tmp_path)
    db = make_db(tmp_path / "live", {b"a": b"1"}, offset=1)
    manifest = take(snaps, db, 1)
    db.close()
    stored = tmp_path / "store" / manifest.manifest_key  # as an older outbid wrote it
    doc = orjson.loads(stored.read_bytes())
    del doc["cluster_id"], doc["changelog_topic_id"]
    stored.write_bytes(orjson.dumps(doc))
    assert snaps.manifests("t", 0)[0].changelog_topic_id == ""
    assert snaps.restore("t", 0, CHANGELOG, tmp_path / "restored") is None


def test_a_crash_mid_upload_leaves_no_snapshot(tmp_path: Path) -> None:
    snaps = service(tmp_path)
    db = make_db(tmp_path / "live", {b"a": b"1"}, offset=1)

    class DiesBeforeManifest(DirectoryBlobStore):
        def put(self, key: str, source: Path) -> None:
            if key.endswith(".json"):
                raise OSError("killed")
            super().put(key, source)

    snaps.blobs = DiesBeforeManifest(tmp_path / "store")
    captured = snaps.capture("t", 0, db, CHANGELOG, 1, {}, db_staging(db))
    assert snaps.publish(captured) is None
    (tmp_path / "store" / "app/t/0/x.tar.partial").write_bytes(b"half")  # killed mid-copy
    snaps.blobs = DirectoryBlobStore(tmp_path / "store")
    assert snaps.manifests("t", 0) == []
    assert snaps.restore("t", 0, CHANGELOG, tmp_path / "restored") is None
    assert all(not k.endswith(".partial") for k in snaps.blobs.list("app/"))
    db.close()


def test_retention_keeps_the_newest(tmp_path: Path) -> None:
    snaps = service(tmp_path, keep=2)
    db = make_db(tmp_path / "live", {b"a": b"1"}, offset=1)
    taken = [take(snaps, db, offset) for offset in (1, 2, 3, 4)]
    db.close()
    assert [m.changelog_offset for m in snaps.manifests("t", 0)] == [4, 3]
    assert not (tmp_path / "store" / taken[0].archive_key).exists()


def test_manifest_refuses_unknown_formats_and_garbage() -> None:
    manifest = Manifest("app", "t", 0, "c", 5, created_at=1.0)
    assert Manifest.decode(manifest.encode(), "k") == manifest
    with pytest.raises(SnapshotError, match="format 2"):
        Manifest.decode(manifest.encode().replace(b'"format": 1', b'"format": 2'), "k")
    with pytest.raises(SnapshotError, match="unreadable"):
        Manifest.decode(b"{not json", "k")
    with pytest.raises(SnapshotError):
        Manifest.decode(b"[]", "k")


def test_blob_keys_cannot_escape_the_root(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="escapes"):
        DirectoryBlobStore(tmp_path).put("../evil", tmp_path)
