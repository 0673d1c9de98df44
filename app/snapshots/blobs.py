"""Where snapshot files live: a small interface, and the directory implementation.

Four operations (put, get, list, delete) on flat string keys are all an object store has to
offer too (S3: PutObject, GetObject, ListObjectsV2, DeleteObject), so adding one is one class.
`put` must be atomic: a key is either absent or holds the complete file, never part of it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from app.settings import Settings


class BlobStore(Protocol):
    def put(self, key: str, source: Path) -> None:
        """Store the file at `source` under `key`, atomically (all or nothing)."""

    def get(self, key: str, dest: Path) -> None:
        """Copy the file under `key` to `dest`; FileNotFoundError when absent."""

    def list(self, prefix: str) -> list[str]:
        """Keys starting with `prefix`, sorted."""

    def delete(self, key: str) -> None:
        """Remove `key`; absent keys are fine."""


class DirectoryBlobStore:
    """Blobs as files under `root` (a shared volume when workers run on several hosts)."""

    PARTIAL = ".partial"

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"snapshot key {key!r} escapes {self.root}")
        return path

    def put(self, key: str, source: Path) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + self.PARTIAL)
        shutil.copyfile(source, partial)
        with partial.open("rb") as f:
            os.fsync(f.fileno())  # the rename below must not publish a file still in the cache
        os.replace(partial, path)

    def get(self, key: str, dest: Path) -> None:
        shutil.copyfile(self._path(key), dest)

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix) if prefix else self.root
        folder = base if prefix.endswith("/") or not prefix else base.parent
        if not folder.is_dir():
            return []
        found = []
        for path in folder.rglob("*"):
            if path.is_file() and not path.name.endswith(self.PARTIAL):
                key = path.relative_to(self.root.resolve()).as_posix()
                if key.startswith(prefix):
                    found.append(key)
        return sorted(found)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


def blob_store(settings: Settings) -> BlobStore:
    """The snapshot store the settings name: OUTBID_SNAPSHOT_URL (s3://bucket/prefix or
    file:///path), else the directory OUTBID_SNAPSHOT_DIR (default: the state dir's snapshots/)."""
    url = settings.snapshot_url
    if url.startswith("s3://"):
        from app.snapshots.s3 import S3BlobStore, S3Location  # noqa: PLC0415 - boto3 on demand

        key_id, secret = settings.s3_access_key_id, settings.s3_secret_access_key
        return S3BlobStore(
            S3Location.parse(url),
            endpoint_url=settings.s3_endpoint_url or None,
            region=settings.s3_region or None,
            access_key=key_id.get_secret_value() if key_id else None,
            secret_key=secret.get_secret_value() if secret else None,
        )
    if url.startswith("file://"):
        return DirectoryBlobStore(Path(unquote(urlsplit(url).path)))
    return DirectoryBlobStore(settings.snapshot_root)
