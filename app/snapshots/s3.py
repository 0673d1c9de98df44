"""Snapshots in an S3-compatible object store (AWS S3, SeaweedFS, MinIO, Ceph RGW, ...).

The same four operations as the directory store (app/snapshots/blobs.py), so everything above it
(manifest-last commit, sha256 check, retention, rejection metrics) is unchanged:
- `put` is atomic by S3's own rule: an object appears whole when its upload completes, never in
  part. Large archives go up in parts (boto3's managed transfer, `MULTIPART_THRESHOLD`), and a
  multipart upload that dies is never visible as an object;
- every call has connect and read timeouts and a bounded number of retries with backoff
  (botocore's "standard" retry mode), so a slow or unreachable store costs a snapshot, never
  the engine: publishing runs on the snapshot thread, and a failed restore falls back to the
  changelog (tables/recovery.py).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from app.errors import SnapshotError

log = logging.getLogger(__name__)
MiB = 1024 * 1024
MULTIPART_THRESHOLD = 16 * MiB  # archives above it are uploaded in 16 MiB parts
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0
MAX_ATTEMPTS = 4  # first try + 3 retries, with botocore's jittered exponential backoff


@dataclass(frozen=True, slots=True)
class S3Location:
    bucket: str
    prefix: str  # "" or ending in "/"

    @classmethod
    def parse(cls, url: str) -> S3Location:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise SnapshotError(f"{url!r} is not an s3://bucket[/prefix] URL")
        prefix = parts.path.strip("/")
        return cls(parts.netloc, f"{prefix}/" if prefix else "")


class S3BlobStore:
    """Blobs as objects under `s3://bucket/prefix/`."""

    def __init__(
        self,
        location: S3Location,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        client: Any = None,
    ) -> None:
        import boto3  # noqa: PLC0415 - only a worker that snapshots to S3 pays for importing it
        from boto3.s3.transfer import TransferConfig  # noqa: PLC0415
        from botocore.config import Config  # noqa: PLC0415

        self.location = location
        self.client = client or boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region or "us-east-1",
            aws_access_key_id=access_key,  # None: boto3's own chain (env, profile, instance role)
            aws_secret_access_key=secret_key,
            config=Config(
                connect_timeout=CONNECT_TIMEOUT_S,
                read_timeout=READ_TIMEOUT_S,
                retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
                s3={"addressing_style": "path"},  # works with every S3-compatible server
            ),
        )
        self.transfer = TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_THRESHOLD
        )

    def __repr__(self) -> str:  # never the credentials
        return f"S3BlobStore(s3://{self.location.bucket}/{self.location.prefix})"

    def _key(self, key: str) -> str:
        return self.location.prefix + key

    @contextlib.contextmanager
    def _errors(self, what: str, key: str) -> Iterator[None]:
        """The store's failures as OSError (FileNotFoundError for a missing key), as the directory
        store raises them: the snapshot code above handles exactly those."""
        from boto3.exceptions import Boto3Error  # noqa: PLC0415
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        where = f"s3://{self.location.bucket}/{self._key(key)}"
        try:
            yield
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NoSuchBucket", "NotFound"):
                raise FileNotFoundError(where) from exc
            raise OSError(f"{what} {where}: {exc}") from exc
        except (BotoCoreError, Boto3Error) as exc:  # unreachable, timed out, upload failed
            raise OSError(f"{what} {where}: {exc}") from exc

    def put(self, key: str, source: Path) -> None:
        with self._errors("put", key):
            self.client.upload_file(
                str(source), self.location.bucket, self._key(key), Config=self.transfer
            )

    def get(self, key: str, dest: Path) -> None:
        with self._errors("get", key):
            self.client.download_file(
                self.location.bucket, self._key(key), str(dest), Config=self.transfer
            )

    def list(self, prefix: str) -> list[str]:
        found: list[str] = []
        strip = len(self.location.prefix)
        with self._errors("list", prefix):
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.location.bucket, Prefix=self._key(prefix)):
                found.extend(item["Key"][strip:] for item in page.get("Contents", []))
        return sorted(found)

    def delete(self, key: str) -> None:
        with self._errors("delete", key):
            self.client.delete_object(Bucket=self.location.bucket, Key=self._key(key))

    def ensure_bucket(self) -> None:
        """Create the bucket when it does not exist (a dev stack, compose; a production bucket is
        usually created by whoever owns the account, and then this only looks)."""
        try:
            with self._errors("head bucket", ""):
                self.client.head_bucket(Bucket=self.location.bucket)
        except FileNotFoundError:
            with self._errors("create bucket", ""):
                self.client.create_bucket(Bucket=self.location.bucket)


def _code(exc: Exception) -> str:
    response: dict[str, Any] = getattr(exc, "response", {}) or {}
    return str(response.get("Error", {}).get("Code", ""))
