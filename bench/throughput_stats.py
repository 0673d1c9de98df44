"""The pure parts of `outbid bench throughput`: statistics, Prometheus parsing, the JSON report.

Nothing here talks to Kafka or starts a process, so all of it is unit-tested without servers.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

# The issue's targets, written down once (docs/benchmarks.md compares against the same numbers).
TARGET_CMDS_PER_S = 20_000
TARGET_RATIO = 0.40
TARGET_P99_MS = 100.0
TARGET_SCALING_LOSS = 0.20  # 100x auctions within 20% of 1x
LOAD_LEVELS = (0.25, 0.50, 0.75, 1.00)  # offered load as a share of the measured maximum
ISSUED_AT_FIELD = b'"issued_at":"'


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


def sustained_rate(
    samples: Sequence[tuple[float, float]], total: float, lo: float = 0.1, hi: float = 0.9
) -> float | None:
    """Slope of a progress curve between lo*total and hi*total: warm-up and tail left out."""
    window = [(t, v) for t, v in samples if lo * total <= v <= hi * total]
    return slope(window)


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


def parse_histogram(text: str, name: str) -> dict[float, float]:
    """Cumulative bucket counts {le: count} of histogram `name` from /metrics text."""
    buckets: dict[float, float] = {}
    prefix = f"{name}_bucket{{"
    for line in text.splitlines():
        if not line.startswith(prefix):
            continue
        labels, _, value = line[len(prefix) :].partition("} ")
        for label in labels.split(","):
            key, _, raw = label.partition("=")
            if key == "le":
                le = raw.strip('"')
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
    seconds: float

    @property
    def cmds_per_s(self) -> float:
        return self.commands / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class PipelineRun:
    workers: int
    auctions: int
    commands: int  # timed commands (the auctions were opened before the clock started)
    seconds: float  # first command sent -> every command's events projected and committed
    decide_seconds: float  # first command sent -> every command's offset committed
    sustained_cmds_per_s: float | None  # slope of the decided curve between 10% and 90%
    events: int  # event records written (the projection's input)
    worker_peak_rss_mb: list[float]
    load_avg: tuple[float, float, float]
    engine: str = "faust"  # or "hotpath" (app/hotpath)

    @property
    def cmds_per_s(self) -> float:
        return self.commands / self.seconds if self.seconds > 0 else 0.0

    @property
    def decide_cmds_per_s(self) -> float:
        return self.commands / self.decide_seconds if self.decide_seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class LatencyLevel:
    share: float  # of the measured maximum
    offered_per_s: float
    sent: int
    send_seconds: float  # first to last command handed to the producer
    seconds: float  # first command sent -> every one of them projected and committed
    event_committed: dict[str, float | int | None]  # issued -> event readable (read_committed)
    projection_committed: dict[str, float | int | None]  # issued -> view in its changelog
    projection_applied: dict[str, float | int | None]  # worker histogram (HTTP-visible view)
    redis_visible: dict[str, float | int | None]  # worker histogram (Redis read model)
    backlog_after: int  # commands not yet committed when sending stopped

    def measured(self, engine: str) -> dict[str, float | int | None]:
        """Command issued -> its view committed. The hot path commits each view in the same
        transaction as its events and writes one view record per auction per transaction, so
        for it the events' commit times are the views' (and cover every command)."""
        return self.event_committed if engine == "hotpath" else self.projection_committed

    @property
    def drain_seconds(self) -> float:
        """Last command sent -> all processed: about one commit interval when the worker keeps up."""
        return max(0.0, self.seconds - self.send_seconds)


@dataclass(slots=True)
class Results:
    ceiling: list[CeilingRun] = field(default_factory=list)
    pipeline: list[PipelineRun] = field(default_factory=list)  # every workers/auctions run
    latency: list[LatencyLevel] = field(default_factory=list)
    latency_worker_rss_mb: list[float] = field(default_factory=list)
    hotpath_latency: list[LatencyLevel] = field(default_factory=list)
    hotpath_latency_rss_mb: list[float] = field(default_factory=list)


def _runs(
    results: Results, workers: int, auctions: int, engine: str = "faust"
) -> list[PipelineRun]:
    return [
        r
        for r in results.pipeline
        if r.workers == workers and r.auctions == auctions and r.engine == engine
    ]


def _at_least(value: Any, bound: float) -> bool:
    return isinstance(value, int | float) and value >= bound


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


MEASURED_AS = {
    "faust": "command issued -> its view committed to the highest_bids changelog, read by a "
    "read_committed consumer",
    "hotpath": "command issued -> its events committed, read by a read_committed consumer (the "
    "view commits in the same transaction)",
}


def engine_section(
    results: Results,
    engine: str,
    latency: Sequence[LatencyLevel],
    latency_rss: Sequence[float],
    *,
    base_auctions: int,
    ceiling: float | None,
) -> dict[str, Any]:
    """One engine's numbers against the targets; `ceiling` comes from the same run."""
    one = _runs(results, 1, base_auctions, engine)
    two = _runs(results, 2, base_auctions, engine)
    pipeline = median_or_none(r.cmds_per_s for r in one)
    rss = [mb for r in one for mb in r.worker_peak_rss_mb]
    at_half = next((lv for lv in latency if lv.share == 0.5), None)
    half = at_half.measured(engine) if at_half else {}
    p99 = half.get("p99_ms")
    scaling: list[dict[str, Any]] = []
    for auctions in sorted(
        {r.auctions for r in results.pipeline if r.workers == 1 and r.engine == engine}
    ):
        runs = _runs(results, 1, auctions, engine)
        rate = median_or_none(r.cmds_per_s for r in runs)
        scaling.append(
            {
                "auctions": auctions,
                "scale": round(auctions / base_auctions, 3),
                "cmds_per_s": _round(rate),
                "vs_1x": _round(rate / pipeline, 3) if rate and pipeline else None,
                "worker_peak_rss_mb": _round(max(mb for r in runs for mb in r.worker_peak_rss_mb)),
            }
        )
    ratio = pipeline / ceiling if pipeline and ceiling else None
    scaled = [s for s in scaling if s["scale"] >= 100]
    return {
        "pipeline_cmds_per_s": _round(pipeline),
        "pipeline_decide_cmds_per_s": _round(median_or_none(r.decide_cmds_per_s for r in one)),
        "pipeline_sustained_decide_cmds_per_s": _round(
            median_or_none(r.sustained_cmds_per_s for r in one)
        ),
        "pipeline_2_workers_cmds_per_s": _round(median_or_none(r.cmds_per_s for r in two)),
        "ratio": _round(ratio, 6),
        "p50_ms": half.get("p50_ms"),
        "p99_ms": half.get("p99_ms"),
        "p999_ms": half.get("p999_ms"),
        "latency_measured_as": MEASURED_AS[engine],
        "worker_peak_rss_mb": _round(max(rss)) if rss else None,
        "auction_scaling": scaling,
        "targets": {
            "cmds_per_s": TARGET_CMDS_PER_S,
            "cmds_per_s_met": bool(pipeline and pipeline >= TARGET_CMDS_PER_S),
            "ratio": TARGET_RATIO,
            "ratio_met": bool(ratio and ratio >= TARGET_RATIO),
            "p99_ms": TARGET_P99_MS,
            "p99_met": isinstance(p99, int | float) and p99 < TARGET_P99_MS,
            "scaling_100x_within": TARGET_SCALING_LOSS,
            "scaling_met": _at_least(scaled[-1]["vs_1x"], 1 - TARGET_SCALING_LOSS)
            if scaled
            else None,
        },
        "latency": [{**asdict(lv), "drain_seconds": round(lv.drain_seconds, 2)} for lv in latency],
        "latency_worker_peak_rss_mb": list(latency_rss),
    }


def build_report(
    results: Results,
    *,
    base_auctions: int,
    guarantee: str,
    machine: Mapping[str, Any],
    config: Mapping[str, Any],
) -> dict[str, Any]:
    """The JSON document: the Faust pipeline's medians at the top level (and the hot path's under
    "hotpath" when it ran), every raw number below."""
    tx = median_or_none(c.cmds_per_s for c in results.ceiling if c.transactional)
    plain = median_or_none(c.cmds_per_s for c in results.ceiling if not c.transactional)
    faust = engine_section(
        results,
        "faust",
        results.latency,
        results.latency_worker_rss_mb,
        base_auctions=base_auctions,
        ceiling=tx,
    )
    hotpath = (
        engine_section(
            results,
            "hotpath",
            results.hotpath_latency,
            results.hotpath_latency_rss_mb,
            base_auctions=base_auctions,
            ceiling=tx,
        )
        if any(r.engine == "hotpath" for r in results.pipeline)
        else None
    )
    return {
        "benchmark": "outbid bench throughput",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "guarantee": guarantee,
        "ceiling_cmds_per_s": _round(tx),
        "ceiling_non_transactional_cmds_per_s": _round(plain),
        **faust,
        "hotpath": hotpath,
        "machine": dict(machine),
        "config": dict(config),
        "raw": {
            "ceiling": [
                {**asdict(c), "cmds_per_s": round(c.cmds_per_s, 1)} for c in results.ceiling
            ],
            "pipeline": [
                {
                    **asdict(r),
                    "cmds_per_s": round(r.cmds_per_s, 1),
                    "decide_cmds_per_s": round(r.decide_cmds_per_s, 1),
                }
                for r in results.pipeline
            ],
        },
    }
