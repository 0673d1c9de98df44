"""The snapshot stores' contract, run against the directory store and a real S3-compatible server.

Everything above a store (manifest-last publishing, sha256 checks, retention, restore) relies on
these four operations behaving alike; a slow or unreachable store must cost snapshots, never raise
anything but OSError (which the snapshot code handles).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rocksdict import Options, Rdict

from app import metrics
from app.devstack import processes
from app.settings import Settings
from app.snapshots.blobs import BlobStore, DirectoryBlobStore, blob_store
from app.snapshots.checkpoints import Policy, TableSnapshots
from app.snapshots.s3 import MULTIPART_THRESHOLD, S3BlobStore, S3Location
from app.topics.incarnation import Incarnation
from tests.s3_server import S3Server

pytestmark = pytest.mark.integration
CHANGELOG = ("app-t-changelog", Incarnation("cluster", "topic-id"))


def s3_store(server: S3Server, bucket: str, prefix: str = "snaps/") -> S3BlobStore:
    settings = Settings(
        snapshot_url=f"s3://{bucket}/{prefix}",
        s3_endpoint_url=server.endpoint,
        s3_access_key_id=server.access_key,  # type: ignore[arg-type]  # pydantic makes it secret
        s3_secret_access_key=server.secret_key,  # type: ignore[arg-type]
    )
    store = blob_store(settings)
    assert isinstance(store, S3BlobStore)
    return store


@pytest.fixture(params=["directory", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    if request.param == "directory":
        yield DirectoryBlobStore(tmp_path / "blobs")
    else:
        server: S3Server = request.getfixturevalue("s3_server")
        yield s3_store(server, request.getfixturevalue("s3_bucket"))


def test_put_get_list_delete(store: BlobStore, tmp_path: Path) -> None:
    source = tmp_path / "file"
    source.write_bytes(b"state")
    store.put("app/t/0/a.tar", source)
    store.put("app/t/0/a.json", source)
    store.put("app/t/1/b.tar", source)
    store.put("app/u/0/c.tar", source)
    assert store.list("app/t/0/") == ["app/t/0/a.json", "app/t/0/a.tar"]
    assert store.list("app/t/") == ["app/t/0/a.json", "app/t/0/a.tar", "app/t/1/b.tar"]
    dest = tmp_path / "copy"
    store.get("app/t/0/a.tar", dest)
    assert dest.read_bytes() == b"state"
    store.delete("app/t/0/a.tar")
    store.delete("app/t/0/never-there")  # absent keys are fine
    assert store.list("app/t/0/") == ["app/t/0/a.json"]
    with pytest.raises(FileNotFoundError):
        store.get("app/t/0/a.tar", dest)


def test_a_large_archive_goes_up_in_parts_and_comes_back_identical(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    store = s3_store(s3_server, s3_bucket)
    big = tmp_path / "big.tar"
    big.write_bytes(os.urandom(MULTIPART_THRESHOLD * 2 + 12345))
    store.put("app/t/0/big.tar", big)
    head = store.client.head_object(Bucket=s3_bucket, Key="snaps/app/t/0/big.tar")
    assert head["ETag"].strip('"').endswith("-3")  # a multipart upload of 3 parts
    back = tmp_path / "back.tar"
    store.get("app/t/0/big.tar", back)
    assert hashlib.sha256(back.read_bytes()).digest() == hashlib.sha256(big.read_bytes()).digest()


def test_an_unreachable_store_costs_a_snapshot_and_restores_nothing(tmp_path: Path) -> None:
    dead = S3BlobStore(
        S3Location.parse("s3://nowhere/x"),
        endpoint_url=f"http://127.0.0.1:{processes.free_port()}",  # nothing listens
        access_key="k",
        secret_key="s",
    )
    source = tmp_path / "f"
    source.write_bytes(b"x")
    started = time.monotonic()
    with pytest.raises(OSError, match="nowhere"):
        dead.put("k", source)
    with pytest.raises(OSError):
        dead.list("app/")
    assert time.monotonic() - started < 30  # bounded retries, never a hang

    snaps = TableSnapshots(dead, "app", Policy(interval_s=0, every_writes=1, keep=2))
    db = Rdict(str(tmp_path / "db"), options=Options(raw_mode=True))
    db[b"a"] = b"1"
    snaps.note_writes("t", 0, 1)
    failed = metrics.SNAPSHOT_FAILURES.labels("t", "publish")
    before = failed._value.get()
    captured = snaps.capture("t", 0, db, CHANGELOG, 0, {}, tmp_path / "staging")
    assert snaps.publish(captured) is None  # counted, not raised
    assert failed._value.get() == before + 1
    db.close()
    listed = metrics.SNAPSHOT_FAILURES.labels("t", "list")
    before = listed._value.get()
    asked: list[str] = []
    real_list = dead.list
    dead.list = lambda prefix: asked.append(prefix) or real_list(prefix)  # type: ignore[method-assign]
    assert snaps.restore("t", 0, CHANGELOG, tmp_path / "restored") is None  # -> the changelog
    assert snaps.restore("t", 1, CHANGELOG, tmp_path / "restored-1") is None
    assert listed._value.get() == before + 2  # both counted ...
    assert asked == ["app/t/0/"]  # ... but the store, failed a moment ago, was asked once


def test_publish_prune_and_restore_through_s3(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    store = s3_store(s3_server, s3_bucket)
    snaps = TableSnapshots(store, "app", Policy(interval_s=0, every_writes=1, keep=2))
    db = Rdict(str(tmp_path / "db"), options=Options(raw_mode=True))
    for offset in range(4):
        db[b"k"] = str(offset).encode()
        snaps.note_writes("t", 0, 1)
        captured = snaps.capture("t", 0, db, CHANGELOG, offset, {}, tmp_path / "staging")
        assert snaps.publish(captured) is not None
    db.close()
    assert len([k for k in store.list("app/t/0/") if k.endswith(".json")]) == 2  # retention
    restored = snaps.restore("t", 0, CHANGELOG, tmp_path / "restored")
    assert restored is not None
    assert restored.changelog_offset == 3
    back = Rdict(str(tmp_path / "restored"), options=Options(raw_mode=True))
    assert back[b"k"] == b"3"
    back.close()
    other = ("app-t-changelog", Incarnation("cluster", "re-created"))
    assert snaps.restore("t", 0, other, tmp_path / "foreign") is None  # same rule as on disk


def test_the_snapshot_url_chooses_the_store(tmp_path: Path) -> None:
    assert isinstance(blob_store(Settings(snapshot_url=f"file://{tmp_path}/x")), DirectoryBlobStore)
    assert isinstance(blob_store(Settings(state_dir=tmp_path)), DirectoryBlobStore)
    s3 = blob_store(Settings(snapshot_url="s3://bucket/some/prefix", s3_endpoint_url="http://h:1"))
    assert isinstance(s3, S3BlobStore)
    assert s3.location == S3Location("bucket", "some/prefix/")
    assert "secret" not in repr(s3)
