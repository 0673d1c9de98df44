"""Every Prometheus metric outbid exports, declared in one place (names carry their units).

Latency histograms use explicit buckets from 1 ms to 60 s, dense enough around 5-500 ms for
usable p50/p99/p999 (histogram_quantile) on a pipeline whose target is p99 < 100 ms.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.04,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.5,
    0.75,
    1.0,
    2.0,
    5.0,
    10.0,
    30.0,
    60.0,
)

COMMANDS = Counter("outbid_commands_total", "Commands handled, by outcome", ["outcome"])
EVENTS = Counter(
    "outbid_events_total", "Decision events appended to the event store, by type", ["type"]
)
DEAD_LETTERS = Counter(
    "outbid_dead_letters_total", "Records parked in the dead-letter topic, by reason", ["reason"]
)
RETRIES = Counter(
    "outbid_retries_total", "Retries of transient failures, by operation", ["operation"]
)
PROJECTED = Counter(
    "outbid_projection_events_total",
    "Events applied to a projection (or skipped as seen)",
    ["projection", "result"],
)
COMMAND_TO_EVENT = Histogram(
    "outbid_command_to_event_seconds",
    "Command issued_at to its decision events committed (newest command per auction per transaction)",
    buckets=LATENCY_BUCKETS,
)
COMMAND_TO_PROJECTION = Histogram(
    "outbid_command_to_projection_seconds",
    "Command issued_at to the highest-bid view committed (same transaction as the events)",
    buckets=LATENCY_BUCKETS,
)
COMMAND_TO_REDIS = Histogram(
    "outbid_command_to_redis_seconds",
    "Command issued_at to its result visible in the Redis read model",
    buckets=LATENCY_BUCKETS,
)
REDIS_WRITES = Counter(
    "outbid_redis_writes_total", "Read-model writes, by result (applied or stale)", ["result"]
)
REBALANCES = Counter("outbid_rebalances_total", "Partition assignments received by this worker")
RECOVERY_RECORDS = Counter(
    "outbid_recovery_records_total",
    "Changelog records replayed into a table during recovery",
    ["table"],
)
RECOVERY = Histogram(
    "outbid_recovery_seconds",
    "Time from a partition assignment to ready",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
)
CONSUMER_LAG = Gauge(
    "outbid_consumer_lag_records",
    "Records behind the partition's end (last fetch)",
    ["topic", "partition"],
)
ASSIGNED = Gauge("outbid_assigned_partitions", "Source partitions assigned to this worker")
SNAPSHOTS = Counter("outbid_snapshots_total", "Table checkpoint snapshots published", ["table"])
SNAPSHOT_FAILURES = Counter(
    "outbid_snapshot_failures_total", "Table snapshots that failed, by stage", ["table", "stage"]
)
SNAPSHOT_SECONDS = Histogram(
    "outbid_snapshot_seconds",
    "Time to capture, publish or restore a table snapshot",
    ["table", "stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
SNAPSHOT_BYTES = Gauge("outbid_snapshot_bytes", "Size of the last published snapshot", ["table"])
SNAPSHOT_RESTORES = Counter(
    "outbid_snapshot_restores_total", "Table partitions restored from a snapshot", ["table"]
)
SNAPSHOT_RESTORE_AGE = Gauge(
    "outbid_snapshot_restore_age_seconds", "Age of the last snapshot restored", ["table"]
)
SNAPSHOT_RESTORE_BYTES = Gauge(
    "outbid_snapshot_restore_bytes", "Size of the last snapshot restored", ["table"]
)
SNAPSHOT_REJECTED = Counter(
    "outbid_snapshot_rejected_total",
    "Snapshots skipped at restore (corrupt, foreign, unreadable manifest)",
    ["table", "reason"],
)
AGGREGATE_SNAPSHOTS = Counter(
    "outbid_aggregate_snapshots_total", "Per-auction snapshots written to auction-snapshots"
)
AGGREGATE_SNAPSHOT_FALLBACKS = Counter(
    "outbid_aggregate_snapshot_fallbacks_total",
    "Aggregate snapshots that could not be used (replayed from the event log instead)",
    ["reason"],
)
TRANSACTION_COMMIT = Histogram(
    "outbid_transaction_commit_seconds",
    "One engine transaction's commit, by stage (tables, offsets, commit)",
    ["stage"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
TRANSACTIONS_ABORTED = Counter(
    "outbid_transactions_aborted_total",
    "Engine transactions aborted and re-processed from the committed offsets",
)
TRANSACTION_RECORDS = Histogram(
    "outbid_transaction_records",
    "Commands consumed per committed engine transaction",
    buckets=(1, 10, 100, 1_000, 10_000, 100_000),
)
