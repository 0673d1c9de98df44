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
    "Command issued_at to its decision event appended",
    buckets=LATENCY_BUCKETS,
)
COMMAND_TO_PROJECTION = Histogram(
    "outbid_command_to_projection_seconds",
    "Command issued_at to the highest-bid projection applying its event",
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
