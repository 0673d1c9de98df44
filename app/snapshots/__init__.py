"""Snapshots: recovery in time proportional to state, not to history (docs/snapshots.md).

- `blobs`: where snapshot files live (a directory; an object store fits the same interface).
- `manifest`: what a table checkpoint reflects (changelog offset, source offsets, checksum).
- `checkpoints`: consistent RocksDB checkpoints of table partitions, taken at commit time, and
  their restore into a worker that has no local state.
- `aggregates`: per-auction snapshots on the `auction-snapshots` topic (state + seq + offset).
"""
