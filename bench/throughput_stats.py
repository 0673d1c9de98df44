"""The pure parts of `outbid bench throughput`: statistics, Prometheus parsing, the JSON report.

Nothing here talks to Kafka or starts a process, so all of it is unit-tested without servers.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

# The issue's targets, written down once (docs/benchmarks.md compares against the same numbers).
TARGET_CMDS_PER_S = 25_000  # one worker, fully processed
TARGET_TWO_WORKERS = 1.4  # two workers vs one
TARGET_STEADY_P50_MS = 60.0  # at the steady rate (3,000 commands/s)
TARGET_STEADY_P99_MS = 200.0
LOAD_LEVELS = (0.25, 0.50, 0.75, 1.00)  # offered load as a share of the measured maximum
STEADY_RATE = 3_000.0  # commands/s: a fixed load level, comparable across machines and runs
ISSUED_AT_FIELD = b'"issued_at":"'
GUARANTEE = "exactly_once"  # the engine has no other mode
MEASURED_AS = (
    "command issued -> its highest_bids changelog record (the view with its seq) committed, "
    "read by a read_committed consumer; the events commit in the same transaction"
)


# --- statistics ---------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0 <= q <= 1) with linear interpolation between ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} is outside [0, 1]")
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_summary(seconds: Sequence[float]) -> dict[str, float | int | None]:
    """count, p50/p99/p999/max/mean in milliseconds (None when there is no sample)."""
    if not seconds:
        return {"count": 0, "p50_ms": None, "p99_ms": None, "p999_ms": None, "max_ms": None}
    ms = sorted(s * 1000.0 for s in seconds)
    return {
        "count": len(ms),
        "p50_ms": round(percentile(ms, 0.50), 2),
        "p99_ms": round(percentile(ms, 0.99), 2),
        "p999_ms": round(percentile(ms, 0.999), 2),
        "max_ms": round(ms[-1], 2),
        "mean_ms": round(statistics.fmean(ms), 2),
    }


def median_or_none(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def slope(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (t, value) points; None with fewer than two distinct times."""
    if len(points) < 2:
        return None
    mean_t = statistics.fmean(t for t, _ in points)
    mean_v = statistics.fmean(v for _, v in points)
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / var


def steady_rate(
    samples: Sequence[tuple[float, float]],
    total: float,
    after: float,
    hi: float = 0.9,
    min_points: int = 3,
) -> tuple[float | None, float]:
    """(rate, seconds) of a progress curve of (t, done) over its steady window: from `after`
    (the whole backlog is in Kafka and the sender is idle, so it no longer competes for the CPU)
    until hi * total (the tail, where partitions finish unevenly, is left out). (None, 0.0) when
    fewer than `min_points` samples fall in it, or when they show no progress at all (a window
    shorter than one transaction, whose offsets commit together): the run was too short to have
    a steady window."""
    window = [(t, v) for t, v in samples if t >= after and v <= hi * total]
    if len(window) < min_points or window[0][1] == window[-1][1]:
        return None, 0.0
    return slope(window), window[-1][0] - window[0][0]


class ViewMatcher:
    """Pairs each command's event with the moment its view became readable.

    The engine writes one `highest_bids` changelog record per changed auction per transaction
    (its last value), so a command's view is the first view record of its auction whose seq
    reaches its event's seq. Events and views of one auction are each read in order (one
    partition each), but either topic may be read ahead of the other: an event waits for a later
    view, and a view read first waits for the events it covers.
    """

    def __init__(self) -> None:
        self._waiting: dict[str, deque[tuple[int, float]]] = {}  # events: (seq, issued)
        self._viewed: dict[str, deque[tuple[int, float]]] = {}  # views read first: (seq, seen)
        self.samples: list[tuple[float, float]] = []  # (issued, view seen)

    def event(self, auction: str, seq: int, issued: float) -> None:
        viewed = self._viewed.get(auction)
        while viewed and viewed[0][0] < seq:
            viewed.popleft()  # older views: this and later events never match them
        if viewed:
            self.samples.append((issued, viewed[0][1]))
        else:
            self._waiting.setdefault(auction, deque()).append((seq, issued))

    def view(self, auction: str, seq: int, seen: float) -> None:
        waiting = self._waiting.get(auction)
        while waiting and waiting[0][0] <= seq:
            self.samples.append((waiting.popleft()[1], seen))
        if not waiting:  # events up to `seq` may still be on their way
            self._viewed.setdefault(auction, deque()).append((seq, seen))


# --- load generation helpers ---------------------------------------------------------------


def iso_stamp(epoch_s: float) -> bytes:
    """`2026-01-02T03:04:05.123456Z`, the wire format of issued_at (always with microseconds)."""
    moment = datetime.fromtimestamp(epoch_s, UTC)
    return moment.isoformat(timespec="microseconds").removesuffix("+00:00").encode() + b"Z"


def restamp(value: bytes, stamp: bytes) -> bytes:
    """The command with its issued_at replaced by `stamp` (unchanged when it has none).

    The generator stamps a command when it builds it; a paced sender sends it later, so latency
    is measured from a stamp taken at the moment of sending instead.
    """
    start = value.find(ISSUED_AT_FIELD)
    if start < 0:
        return value
    start += len(ISSUED_AT_FIELD)
    end = value.find(b'"', start)
    if end < 0:
        return value
    return value[:start] + stamp + value[end:]


# --- Prometheus text format ----------------------------------------------------------------


def _labels(raw: str) -> dict[str, str]:
    found = {}
    for label in raw.split(","):
        key, _, value = label.partition("=")
        if key:
            found[key.strip()] = value.strip().strip('"')
    return found


def counter_total(text: str, name: str, labels: Mapping[str, str] | None = None) -> float:
    """The sum of every sample of `name` in /metrics text whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            if not labels:
                total += float(line.rsplit(" ", 1)[1])
        elif line.startswith(f"{name}{{"):
            raw, _, value = line[len(name) + 1 :].partition("} ")
            found = _labels(raw)
            if all(found.get(k) == v for k, v in (labels or {}).items()):
                total += float(value)
    return total


def parse_histogram(text: str, name: str) -> dict[float, float]:
    """Cumulative bucket counts {le: count} of histogram `name` from /metrics text."""
    buckets: dict[float, float] = {}
    prefix = f"{name}_bucket{{"
    for line in text.splitlines():
        if not line.startswith(prefix):
            continue
        raw, _, value = line[len(prefix) :].partition("} ")
        le = _labels(raw).get("le")
        if le is not None:
            buckets[math.inf if le == "+Inf" else float(le)] = float(value)
    return buckets


def bucket_delta(after: Mapping[float, float], before: Mapping[float, float]) -> dict[float, float]:
    return {le: count - before.get(le, 0.0) for le, count in after.items()}


def histogram_quantile(buckets: Mapping[float, float], q: float) -> float | None:
    """Prometheus' histogram_quantile over cumulative buckets: linear within the bucket."""
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    prev_le, prev_count = 0.0, 0.0
    for le, count in ordered:
        if count >= rank:
            if math.isinf(le):
                return prev_le  # beyond the last finite bucket: its bound is all we know
            width = count - prev_count
            return prev_le + (le - prev_le) * ((rank - prev_count) / width if width else 1.0)
        prev_le, prev_count = le, count
    return prev_le


def histogram_summary(buckets: Mapping[float, float]) -> dict[str, float | int | None]:
    total = max(buckets.values(), default=0.0)

    def ms(q: float) -> float | None:
        value = histogram_quantile(buckets, q)
        return None if value is None else round(value * 1000.0, 1)

    return {"count": int(total), "p50_ms": ms(0.5), "p99_ms": ms(0.99), "p999_ms": ms(0.999)}


# --- results and the report ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CeilingRun:
    transactional: bool
    commands: int
    seconds: float  # first record read -> last commit
    transactions: int = 0

    @property
    def cmds_per_s(self) -> float:
        return self.commands / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class PipelineRun:
    workers: int
    auctions: int
    commands: int  # timed commands (the auctions were opened before the clock started)
    seconds: float  # first command sent -> every command committed and written to Redis
    steady_cmds_per_s: float | None  # committed offsets over the steady window (steady_rate)
    steady_window_s: float  # how long that window was (0: none)
    events: int  # decision events written (the workers' outbid_events_total)
    transactions: int  # engine transactions committed for them
    worker_peak_rss_mb: list[float]
    load_avg: tuple[float, float, float]
    # the timed commands each worker processed: partitions are the unit of scale-out, and the
    # load's hot auctions make some partitions busier than others
    worker_commands: list[int] = field(default_factory=list)
    # CPU seconds over the timed run: the workers' together, and the broker's (None: not ours to
    # measure, on servers the bench did not start). The broker's includes taking in the commands.
    worker_cpu_s: float | None = None
    broker_cpu_s: float | None = None

    @property
    def busiest_share(self) -> float | None:
        """The busiest worker's share of the commands (None: not counted, or one worker)."""
        total = sum(self.worker_commands)
        return (
            max(self.worker_commands) / total if len(self.worker_commands) > 1 and total else None
        )

    def cpu_us_per_command(self, seconds: float | None) -> float | None:
        return seconds / self.commands * 1e6 if seconds is not None and self.commands else None

    @property
    def overall_cmds_per_s(self) -> float:
        return self.commands / self.seconds if self.seconds > 0 else 0.0

    @property
    def cmds_per_s(self) -> float:
        """The steady rate; a run too short to have a steady window falls back to the overall."""
        return self.steady_cmds_per_s or self.overall_cmds_per_s


@dataclass(frozen=True, slots=True)
class LatencyLevel:
    share: float | None  # of the measured maximum; None for the fixed STEADY_RATE level
    offered_per_s: float
    sent: int
    send_seconds: float  # first to last command handed to the producer
    seconds: float  # first command sent -> every one of them committed
    projection_committed: dict[str, float | int | None]  # issued -> its view's changelog record
    event_committed: dict[str, float | int | None]  # issued -> its event (the same transaction)
    projection_applied: dict[str, float | int | None]  # worker histogram: in its table
    redis_visible: dict[str, float | int | None]  # worker histogram: in the Redis read model
    backlog_after: int  # commands not yet committed when sending stopped

    @property
    def drain_seconds(self) -> float:
        """Last command sent -> all committed: about one transaction when the worker keeps up."""
        return max(0.0, self.seconds - self.send_seconds)


@dataclass(slots=True)
class Results:
    ceiling: list[CeilingRun] = field(default_factory=list)
    pipeline: list[PipelineRun] = field(default_factory=list)  # every workers/auctions run
    # discarded: the first engine run of a fresh broker (its JIT compiles the transaction and
    # compaction paths the ceiling never took; one full run measured 17.0k, then 18.8k, 25.6k)
    warmup: list[PipelineRun] = field(default_factory=list)
    latency: list[LatencyLevel] = field(default_factory=list)
    latency_worker_rss_mb: list[float] = field(default_factory=list)


def _runs(results: Results, workers: int, auctions: int) -> list[PipelineRun]:
    return [r for r in results.pipeline if r.workers == workers and r.auctions == auctions]


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _scaling(results: Results, base_auctions: int, one: float | None) -> list[dict[str, Any]]:
    rows = []
    for auctions in sorted({r.auctions for r in results.pipeline if r.workers == 1}):
        runs = _runs(results, 1, auctions)
        rate = median_or_none(r.cmds_per_s for r in runs)
        rows.append(
            {
                "auctions": auctions,
                "scale": round(auctions / base_auctions, 3),
                "cmds_per_s": _round(rate),
                "vs_1x": _round(rate / one, 3) if rate and one else None,
                "worker_peak_rss_mb": _round(max(mb for r in runs for mb in r.worker_peak_rss_mb)),
            }
        )
    return rows


def _level(level: LatencyLevel | None) -> dict[str, Any]:
    view = level.projection_committed if level else {}
    return {key: view.get(key) for key in ("p50_ms", "p99_ms", "p999_ms")}


def build_report(
    results: Results,
    *,
    base_auctions: int,
    machine: Mapping[str, Any],
    config: Mapping[str, Any],
    source: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON document: medians of the repeats at the top, every raw number below."""
    tx = median_or_none(c.cmds_per_s for c in results.ceiling if c.transactional)
    plain = median_or_none(c.cmds_per_s for c in results.ceiling if not c.transactional)
    one = _runs(results, 1, base_auctions)
    two = _runs(results, 2, base_auctions)
    pipeline = median_or_none(r.cmds_per_s for r in one)
    pipeline_2 = median_or_none(r.cmds_per_s for r in two)
    rss = [mb for r in one for mb in r.worker_peak_rss_mb]
    busiest = median_or_none(r.busiest_share for r in two if r.busiest_share is not None)
    half = _level(next((lv for lv in results.latency if lv.share == 0.5), None))
    steady = next((lv for lv in results.latency if lv.share is None), None)
    scaling = _scaling(results, base_auctions, pipeline)
    ratio = pipeline / tx if pipeline and tx else None
    steady_level = _level(steady)
    steady_p50, steady_p99 = steady_level["p50_ms"], steady_level["p99_ms"]
    return {
        "benchmark": "outbid bench throughput",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "guarantee": GUARANTEE,
        "source": dict(source or {}),
        "ceiling_cmds_per_s": _round(tx),
        "ceiling_non_transactional_cmds_per_s": _round(plain),
        "pipeline_cmds_per_s": _round(pipeline),
        "pipeline_overall_cmds_per_s": _round(median_or_none(r.overall_cmds_per_s for r in one)),
        "pipeline_2_workers_cmds_per_s": _round(pipeline_2),
        "ratio_2_to_1_workers": _round(pipeline_2 / pipeline, 3)
        if pipeline and pipeline_2
        else None,
        # 2 workers can do at most 1 / this times one worker's rate: the busier one has that
        # share of the commands (its partitions hold the hottest auctions)
        "two_workers_busiest_share": _round(busiest, 3),
        # CPU per timed command, medians over the runs (on 2 cores the workers, the broker and
        # the bench share them: 2 workers reach at most 2w / (w + s) of one, docs/benchmarks.md)
        "cpu_us_per_command": {
            str(count): {
                "workers": _median_us(r.cpu_us_per_command(r.worker_cpu_s) for r in runs),
                "broker": _median_us(r.cpu_us_per_command(r.broker_cpu_s) for r in runs),
            }
            for count, runs in ((1, one), (2, two))
            if runs
        },
        "ratio": _round(ratio, 6),
        **half,
        "steady_rate_latency": {
            "offered_per_s": steady.offered_per_s if steady else None,
            **_level(steady),
            "count": steady.projection_committed.get("count") if steady else None,
            "backlog_after": steady.backlog_after if steady else None,
        },
        "latency_measured_as": MEASURED_AS,
        "worker_peak_rss_mb": _round(max(rss)) if rss else None,
        "auction_scaling": scaling,
        "targets": {
            "cmds_per_s": TARGET_CMDS_PER_S,
            "cmds_per_s_met": bool(pipeline and pipeline >= TARGET_CMDS_PER_S),
            "two_workers_vs_one": TARGET_TWO_WORKERS,
            "two_workers_met": pipeline_2 / pipeline >= TARGET_TWO_WORKERS
            if pipeline and pipeline_2
            else None,
            "steady_p50_ms": TARGET_STEADY_P50_MS,
            "steady_p99_ms": TARGET_STEADY_P99_MS,
            "steady_latency_met": _within(steady_p50, TARGET_STEADY_P50_MS)
            and _within(steady_p99, TARGET_STEADY_P99_MS),
        },
        "latency": [
            {**asdict(lv), "drain_seconds": round(lv.drain_seconds, 2)} for lv in results.latency
        ],
        "latency_worker_peak_rss_mb": list(results.latency_worker_rss_mb),
        "machine": dict(machine),
        "config": dict(config),
        "raw": {
            "ceiling": [
                {**asdict(c), "cmds_per_s": round(c.cmds_per_s, 1)} for c in results.ceiling
            ],
            "pipeline": [_pipeline_row(r) for r in results.pipeline],
            "warmup": [_pipeline_row(r) for r in results.warmup],
        },
    }


def _pipeline_row(run: PipelineRun) -> dict[str, Any]:
    return {
        **asdict(run),
        "cmds_per_s": round(run.cmds_per_s, 1),
        "overall_cmds_per_s": round(run.overall_cmds_per_s, 1),
    }


def _median_us(values: Iterable[float | None]) -> float | None:
    return _round(median_or_none(values), 1)


def _within(value: object, bound: float) -> bool:
    return isinstance(value, int | float) and value <= bound
