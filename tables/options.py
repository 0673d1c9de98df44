"""RocksDB options for every table partition (one RocksDB per table partition)."""

from __future__ import annotations

from typing import Any

import faust

from app.settings import Settings

MiB = 1024 * 1024


def rocksdb_options(settings: Settings) -> dict[str, Any]:
    """A fresh dict per table: Faust pops keys out of it (faust/stores/rocksdb.py)."""
    # Faust's defaults are a 2 GiB block cache and 3 x 64 MiB memtables *per partition*;
    # with 2 tables x 8 partitions that is tens of GiB of potential RSS.
    return {
        "block_cache_size": settings.table_cache_mb * MiB,
        "write_buffer_size": 8 * MiB,
        "max_write_buffer_number": 2,
        "max_open_files": 256,
    }


def bytes_table(
    app: faust.App, settings: Settings, name: str, partitions: int, help_text: str
) -> Any:
    """A RocksDB table with raw-byte keys and values: keys are the auction id's UTF-8, exactly
    the bytes topics are keyed with (so table_route finds the owner); values are codec bytes."""
    return app.Table(
        name,
        key_type=bytes,
        value_type=bytes,
        partitions=partitions,
        options=rocksdb_options(settings),
        help=help_text,
    )
