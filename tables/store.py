"""One table partition's RocksDB (rocksdict), holding only committed state and its changelog offset.

Values are written only after the Kafka transaction that carries their changelog records has
committed, together with the offset of the last of those records, in one atomic write batch. So a
database on disk is always exactly "the changelog up to its stored offset": after `kill -9`, or
when a partition comes back after another worker owned it, recovery replays only the changelog
after that offset (tables/recovery.py). Nothing uncommitted ever reaches it.

The offset lives under faust's key (`__faust\\0offset__`, an ASCII integer). Beside it, the
changelog topic's incarnation (app/topics/incarnation.py: cluster id and topic id): an offset of a
deleted and re-created topic names other records, so recovery trusts a database only when its
incarnation is the live topic's.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rocksdict import BlockBasedOptions, Cache, Options, Rdict, WriteBatch

OFFSET_KEY = b"__faust\x00offset__"
INCARNATION_KEY = b"__outbid\x00incarnation__"  # "cluster_id topic_id" of the changelog
META_KEYS = frozenset({OFFSET_KEY, INCARNATION_KEY})
MiB = 1024 * 1024


def rocksdb_options(cache: Cache) -> Options:
    """Small memtables and one block cache shared by every table partition of the process
    (RocksDB's defaults, 64 MiB memtables each, add up to GiBs over tables x partitions)."""
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.set_write_buffer_size(8 * MiB)
    options.set_max_write_buffer_number(2)
    options.set_max_open_files(256)
    table = BlockBasedOptions()
    table.set_block_cache(cache)
    options.set_block_based_table_factory(table)
    return options


class TableDB:
    """A table partition's database. Reads may come from any thread (the web views); writes
    come from the engine's thread; `close` waits for readers."""

    def __init__(self, path: Path, options: Options) -> None:
        self.path = path
        self._options = options
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db: Rdict | None = Rdict(str(path), options=options)

    @property
    def db(self) -> Rdict:
        if self._db is None:
            raise RuntimeError(f"{self.path} is closed")
        return self._db

    @property
    def offset(self) -> int:
        """The changelog offset the database reflects (-1: none)."""
        raw = self.db.get(OFFSET_KEY)
        return int(raw) if raw is not None else -1

    @property
    def incarnation(self) -> tuple[str, str]:
        """(cluster id, topic id) of the changelog the database was built from; ("", "") unknown."""
        raw = self.db.get(INCARNATION_KEY)
        if raw is None:
            return "", ""
        cluster_id, _, topic_id = bytes(raw).decode().partition(" ")
        return cluster_id, topic_id

    def claim(self, cluster_id: str, topic_id: str) -> None:
        """Record which changelog incarnation the database reflects from now on."""
        self.db[INCARNATION_KEY] = f"{cluster_id} {topic_id}".encode()

    def get(self, key: bytes) -> bytes | None:
        with self._lock:
            if self._db is None:
                return None
            value: bytes | None = self._db.get(key)
            return value

    def write(self, values: Iterable[tuple[bytes, bytes | None]], offset: int) -> None:
        """Committed values (None: delete) and the changelog offset they reach, atomically."""
        batch = WriteBatch(raw_mode=True)
        for key, value in values:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        batch.put(OFFSET_KEY, str(offset).encode())
        self.db.write(batch)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        items: Iterator[Any] = self.db.items()  # raw mode: (bytes, bytes)
        for key, value in items:
            if key not in META_KEYS:
                yield key, value

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def wipe(self) -> None:
        """Delete the database and start an empty one at the same path."""
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)
        self.reopen()

    def reopen(self) -> None:
        with self._lock:
            if self._db is None:
                self._db = Rdict(str(self.path), options=self._options)
