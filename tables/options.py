"""RocksDB options for every table partition (one RocksDB per table partition)."""

from __future__ import annotations

from typing import Any

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
