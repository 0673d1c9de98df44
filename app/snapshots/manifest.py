"""A table checkpoint's manifest: which state the archive holds, and how to check it."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson

from app.errors import SnapshotError

FORMAT = 1  # of the manifest and archive layout; a newer one is skipped, never guessed at
CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Manifest:
    app_id: str
    table: str
    partition: int
    changelog_topic: str
    # Offset of the last changelog record the checkpoint holds (Faust's persisted offset);
    # recovery replays the changelog after it. -1: no record yet.
    changelog_offset: int
    # Next offset of each source topic partition committed in the same transaction.
    source_offsets: dict[str, int] = field(default_factory=dict)
    created_at: float = 0.0  # unix seconds
    size: int = 0  # of the archive, bytes
    sha256: str = ""
    worker: str = ""
    format: int = FORMAT
    # The changelog's incarnation (app/topics/incarnation.py): a snapshot restores only into the
    # topic it was taken from, never into a re-created one however long. Empty: an older outbid.
    cluster_id: str = ""
    changelog_topic_id: str = ""

    @property
    def prefix(self) -> str:
        return f"{self.app_id}/{self.table}/{self.partition}/"

    @property
    def name(self) -> str:
        # Sorts by changelog position, then by time: the newest state is last.
        return f"{self.changelog_offset + 1:020d}-{int(self.created_at * 1000):015d}"

    @property
    def archive_key(self) -> str:
        return f"{self.prefix}{self.name}.tar"

    @property
    def manifest_key(self) -> str:
        return f"{self.prefix}{self.name}.json"

    def encode(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2)

    @classmethod
    def decode(cls, raw: bytes, key: str) -> Manifest:
        data = versioned_json(raw, f"{key}: manifest", FORMAT)
        try:
            return cls(**data)  # type: ignore[arg-type]
        except TypeError as exc:
            raise SnapshotError(f"{key}: unreadable manifest ({exc})") from exc

    def check(self, archive: Path) -> None:
        """Raise SnapshotError unless `archive` is exactly the file this manifest describes."""
        size = archive.stat().st_size
        if size != self.size:
            raise SnapshotError(
                f"{self.archive_key}: {size} bytes, manifest says {self.size} (truncated?)"
            )
        digest = file_sha256(archive)
        if digest != self.sha256:
            raise SnapshotError(f"{self.archive_key}: checksum {digest} != manifest {self.sha256}")


def versioned_json(raw: bytes, what: str, expected: int) -> dict[str, object]:
    """A JSON object whose "format" this outbid reads; SnapshotError for anything else.

    A newer format is refused, never guessed at: its reader falls back to the log.
    """
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SnapshotError(f"{what} unreadable ({exc})") from exc
    version = data.get("format") if isinstance(data, dict) else None
    if version != expected:
        raise SnapshotError(f"{what} has format {version!r}; this outbid reads {expected}")
    return data  # type: ignore[no-any-return]


def file_sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            sha.update(chunk)
    return sha.hexdigest()
