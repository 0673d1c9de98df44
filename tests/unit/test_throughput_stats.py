"""The pure parts of `outbid bench throughput`: statistics, stamps, Prometheus parsing, the report."""

from __future__ import annotations

import math
import os
import subprocess
import time
from datetime import UTC, datetime

import orjson
import pytest
from click.testing import CliRunner

from app.domain import decode_command
from app.loadgen import LoadSpec, generate
from bench.throughput import throughput_command
from bench.throughput_kafka import Cadence, to_event
from bench.throughput_stack import Counters, cpu_seconds
from bench.throughput_stats import (
    CeilingRun,
    LatencyLevel,
    PipelineRun,
    Results,
    ViewMatcher,
    bucket_delta,
    build_report,
    counter_total,
    histogram_quantile,
    iso_stamp,
    latency_summary,
    parse_histogram,
    percentile,
    restamp,
    slope,
    steady_rate,
)


def test_percentile_interpolates_between_ranks_like_numpy() -> None:
    values = [float(v) for v in range(1, 11)]  # 1..10
    assert percentile(values, 0.0) == 1.0
    assert percentile(values, 1.0) == 10.0
    assert percentile(values, 0.5) == pytest.approx(5.5)
    assert percentile(values, 0.99) == pytest.approx(9.91)
    assert percentile([3.0], 0.999) == 3.0


def test_percentile_refuses_empty_input_and_quantiles_outside_0_1() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], 1.5)


def test_latency_summary_reports_milliseconds_in_order_and_none_without_samples() -> None:
    summary = latency_summary([i / 1000 for i in range(1, 1001)])  # 1..1000 ms
    assert summary["count"] == 1000
    assert summary["p50_ms"] == pytest.approx(500.5)
    assert summary["p99_ms"] == pytest.approx(990.01)
    assert summary["p50_ms"] <= summary["p99_ms"] <= summary["p999_ms"] <= summary["max_ms"]  # type: ignore[operator]
    assert latency_summary([])["p99_ms"] is None


def test_slope_fits_a_line() -> None:
    assert slope([(0.0, 0.0), (1.0, 2.0), (2.0, 4.0)]) == pytest.approx(2.0)
    assert slope([(1.0, 5.0)]) is None


def test_steady_rate_starts_once_everything_is_sent_and_leaves_out_the_tail() -> None:
    # sending for 2 s (the sender competes: 50/s), then 100/s, then a flat tail at the total
    curve = [(t / 2, 25.0 * t) for t in range(5)]
    curve += [(2 + t / 2, 100.0 + 50.0 * t) for t in range(1, 19)]
    curve += [(12.0 + t, 1000.0) for t in range(5)]
    rate, seconds = steady_rate(curve, 1000, after=2.0)
    assert rate == pytest.approx(100.0)
    assert seconds == pytest.approx(8.0)  # from 2 s (100 done) to 10 s (900 done)


def test_steady_rate_is_none_when_the_run_has_no_steady_window() -> None:
    assert steady_rate([(0.1, 50.0), (0.2, 100.0)], 100, after=0.0) == (None, 0.0)
    assert steady_rate([(0.1, 10.0), (0.2, 20.0), (0.3, 30.0)], 100, after=0.25) == (None, 0.0)
    # shorter than one transaction: the committed offsets did not move inside the window
    flat = [(0.1, 40.0), (0.2, 40.0), (0.3, 40.0), (0.4, 100.0)]
    assert steady_rate(flat, 100, after=0.0) == (None, 0.0)


def test_a_run_without_a_steady_window_reports_its_overall_rate() -> None:
    run = _pipeline(1, 10, 2.0, steady=None)
    assert run.cmds_per_s == run.overall_cmds_per_s == 500.0
    assert _pipeline(1, 10, 2.0, steady=800.0).cmds_per_s == 800.0


def test_restamp_replaces_issued_at_and_the_command_still_decodes() -> None:
    records: list[tuple[bytes | None, bytes]] = []
    generate(
        LoadSpec(commands=30, auctions=3, garbage=0, duplicates=0),
        lambda k, v: records.append((k, v)),
    )
    stamp = iso_stamp(1_800_000_000.25)
    assert stamp == b"2027-01-15T08:00:00.250000Z"
    for _key, value in records:
        command = decode_command(restamp(value, stamp))
        assert command.issued_at == datetime(2027, 1, 15, 8, 0, 0, 250000, tzinfo=UTC)


def test_restamp_leaves_records_without_issued_at_alone() -> None:
    assert restamp(b"not json at all", iso_stamp(0)) == b"not json at all"
    assert restamp(b'{"issued_at":"unterminated', iso_stamp(0)) == b'{"issued_at":"unterminated'


def test_the_ceiling_writes_an_event_sized_record_per_command() -> None:
    records: list[tuple[bytes | None, bytes]] = []
    generate(LoadSpec(commands=200, auctions=10, garbage=0), lambda k, v: records.append((k, v)))
    sizes = [len(to_event(orjson.loads(v), 12345)) for _k, v in records]
    assert 180 < sum(sizes) / len(sizes) < 320  # a BidAccepted is about 250 bytes


METRICS = """\
# HELP outbid_command_to_redis_seconds Command issued_at to its result visible in the Redis read model
# TYPE outbid_command_to_redis_seconds histogram
outbid_command_to_redis_seconds_bucket{le="0.1"} 10.0
outbid_command_to_redis_seconds_bucket{le="0.5"} 60.0
outbid_command_to_redis_seconds_bucket{le="1.0"} 100.0
outbid_command_to_redis_seconds_bucket{le="+Inf"} 100.0
outbid_command_to_redis_seconds_count 100.0
outbid_command_to_projection_seconds_bucket{le="0.1"} 3.0
# TYPE outbid_commands_total counter
outbid_commands_total{outcome="decided"} 950.0
outbid_commands_total{outcome="dead_letter"} 10.0
outbid_commands_total{outcome="duplicate"} 40.0
outbid_commands_created{outcome="decided"} 1.7e+09
outbid_events_total{type="BidAccepted"} 700.0
outbid_events_total{type="BidRejected"} 250.0
outbid_projection_events_total{projection="highest_bids",result="applied"} 400.0
outbid_redis_writes_total{result="applied"} 390.0
outbid_redis_writes_total{result="stale"} 10.0
outbid_transaction_records_count 12.0
"""


def test_counters_are_summed_over_labels_and_filtered_by_them() -> None:
    assert counter_total(METRICS, "outbid_commands_total") == 1000.0
    assert counter_total(METRICS, "outbid_commands_total", {"outcome": "duplicate"}) == 40.0
    assert counter_total(METRICS, "outbid_transaction_records_count") == 12.0
    assert counter_total(METRICS, "outbid_nothing_total") == 0.0
    assert Counters.parse(METRICS) == Counters(
        commands=1000.0, events=950.0, views=400.0, redis=400.0, transactions=12.0
    )
    assert Counters.parse(METRICS) + Counters.parse("") == Counters.parse(METRICS)


def test_each_event_is_paired_with_the_first_view_that_reaches_its_seq() -> None:
    views = ViewMatcher()
    # one transaction decided seq 1 and 2 of A: one view record (seq 2) commits both
    views.event("A", 1, issued=10.0)
    views.event("A", 2, issued=10.1)
    views.view("A", 2, seen=10.5)
    # the view of seq 3 is read before its event (the changelog's fetch was first)
    views.view("A", 3, seen=11.0)
    views.event("A", 3, issued=10.8)
    # the next transaction: event 4 waits for a later view, never an older one
    views.event("A", 4, issued=11.5)
    views.view("B", 1, seen=12.0)  # another auction's view changes nothing for A
    views.view("A", 4, seen=12.0)
    assert views.samples == [(10.0, 10.5), (10.1, 10.5), (10.8, 11.0), (11.5, 12.0)]


def test_the_ceiling_commits_when_caught_up_or_when_the_transaction_is_old() -> None:
    cadence = Cadence(transaction_max_s=0.05, consume_batch=2_000)
    assert cadence.due(batch=10, age_s=0.0)  # a partial batch: caught up
    assert not cadence.due(batch=2_000, age_s=0.01)  # a full batch: more is waiting
    assert cadence.due(batch=2_000, age_s=0.05)
    assert cadence.wait_s == pytest.approx(0.005)  # as app/engine/loop.py waits


def test_histogram_buckets_are_parsed_per_metric_and_differenced() -> None:
    buckets = parse_histogram(METRICS, "outbid_command_to_redis_seconds")
    assert buckets == {0.1: 10.0, 0.5: 60.0, 1.0: 100.0, math.inf: 100.0}
    before = {0.1: 5.0, 0.5: 10.0, 1.0: 10.0, math.inf: 10.0}
    assert bucket_delta(buckets, before) == {0.1: 5.0, 0.5: 50.0, 1.0: 90.0, math.inf: 90.0}


def test_histogram_quantile_interpolates_inside_the_bucket_like_prometheus() -> None:
    buckets = parse_histogram(METRICS, "outbid_command_to_redis_seconds")
    assert histogram_quantile(buckets, 0.5) == pytest.approx(0.1 + 0.4 * (40 / 50))
    assert histogram_quantile(buckets, 0.05) == pytest.approx(0.05)
    assert histogram_quantile({0.1: 0.0, math.inf: 0.0}, 0.5) is None
    assert histogram_quantile({0.1: 1.0, math.inf: 10.0}, 0.99) == 0.1  # beyond the last bound


def _pipeline(
    workers: int,
    auctions: int,
    seconds: float,
    steady: float | None = -1.0,
    worker_commands: list[int] | None = None,
) -> PipelineRun:
    return PipelineRun(
        workers=workers,
        auctions=auctions,
        commands=1000,
        seconds=seconds,
        steady_cmds_per_s=1000 / seconds if steady == -1.0 else steady,
        steady_window_s=seconds * 0.8,
        events=990,
        transactions=20,
        worker_peak_rss_mb=[100.0 + workers],
        load_avg=(0.5, 0.4, 0.3),
        worker_commands=worker_commands or [],
        worker_cpu_s=seconds * workers * 0.9,
        broker_cpu_s=seconds * 0.3 if workers == 1 else None,  # None: not measured
    )


def _level(share: float | None, p99_ms: float, offered: float = 0.0) -> LatencyLevel:
    summary: dict[str, float | int | None] = {
        "count": 10,
        "p50_ms": p99_ms / 2,
        "p99_ms": p99_ms,
        "p999_ms": p99_ms + 1,
    }
    return LatencyLevel(
        share=share,
        offered_per_s=offered or (share or 0) * 400,
        sent=10,
        send_seconds=1.0,
        seconds=2.0,
        projection_committed=summary,
        event_committed=summary,
        projection_applied=summary,
        redis_visible=summary,
        backlog_after=3,
    )


def test_report_takes_medians_of_repeats_and_keeps_the_raw_numbers() -> None:
    results = Results(
        ceiling=[
            CeilingRun(True, 10_000, 1.0, 20),
            CeilingRun(True, 10_000, 2.0, 40),
            CeilingRun(True, 10_000, 4.0, 80),
            CeilingRun(False, 10_000, 0.5),
        ],
        pipeline=[
            _pipeline(1, 1000, 2.0),
            _pipeline(1, 1000, 4.0),
            _pipeline(1, 1000, 5.0),
            _pipeline(2, 1000, 2.0, worker_commands=[570, 430]),
            _pipeline(2, 1000, 3.0, worker_commands=[400, 600]),
            _pipeline(2, 1000, 1.0, worker_commands=[700, 300]),
            _pipeline(1, 100_000, 6.0),
        ],
        latency=[
            _level(0.25, 50.0),
            _level(0.5, 80.0),
            _level(1.0, 900.0),
            _level(None, 120.0, offered=3000.0),
        ],
        latency_worker_rss_mb=[99.0],
        warmup=[_pipeline(1, 1000, 0.1)],  # 10x faster than any counted run: never a median
    )
    source = {"commit": "0" * 40, "dirty": True}
    report = build_report(
        results,
        base_auctions=1000,
        machine={"cpu_count": 2},
        config={"transaction_max_s": 0.05},
        source=source,
    )
    assert report["ceiling_cmds_per_s"] == 5000.0  # median of 10k, 5k, 2.5k
    assert report["ceiling_non_transactional_cmds_per_s"] == 20000.0
    assert report["pipeline_cmds_per_s"] == 250.0  # median of 500, 250, 200
    assert report["pipeline_2_workers_cmds_per_s"] == 500.0
    assert report["ratio_2_to_1_workers"] == 2.0
    assert report["two_workers_busiest_share"] == 0.6  # median of 0.57, 0.6, 0.7
    # CPU per command: 1,000 commands; 1 worker runs of 2, 4 and 5 s used 0.9 s of CPU per second
    assert report["cpu_us_per_command"] == {
        "1": {"workers": 3600.0, "broker": 1200.0},
        "2": {"workers": 3600.0, "broker": None},  # 2 workers x 0.9 x 2 s (the median run)
    }
    assert report["ratio"] == pytest.approx(250 / 5000)
    assert (report["p50_ms"], report["p99_ms"], report["p999_ms"]) == (40.0, 80.0, 81.0)
    steady = report["steady_rate_latency"]
    assert (steady["offered_per_s"], steady["p99_ms"], steady["count"]) == (3000.0, 120.0, 10)
    assert report["worker_peak_rss_mb"] == 101.0
    assert report["guarantee"] == "exactly_once"
    assert report["source"] == source
    assert report["config"] == {"transaction_max_s": 0.05}
    assert report["targets"]["steady_latency_met"] is True  # 60 / 120 ms at 3,000/s
    assert report["targets"]["cmds_per_s_met"] is False
    assert report["targets"]["two_workers_met"] is True  # 2.0x
    assert [row["scale"] for row in report["auction_scaling"]] == [1.0, 100.0]
    assert report["auction_scaling"][1]["vs_1x"] == pytest.approx(0.667)
    assert len(report["raw"]["ceiling"]) == 4
    assert len(report["raw"]["pipeline"]) == 7
    assert report["raw"]["pipeline"][3]["worker_commands"] == [570, 430]
    assert [r["cmds_per_s"] for r in report["raw"]["warmup"]] == [10_000.0]
    # the warm-up row has the same fields as a counted run's
    assert report["raw"]["warmup"][0].keys() == report["raw"]["pipeline"][0].keys()
    assert [lv["share"] for lv in report["latency"]] == [0.25, 0.5, 1.0, None]
    assert "engine" not in orjson.dumps(report).decode()  # one engine: no engine fields
    orjson.dumps(report)  # JSON-serialisable as it is


def test_report_without_latency_or_scaling_leaves_those_fields_empty() -> None:
    results = Results(ceiling=[CeilingRun(True, 100, 1.0)], pipeline=[_pipeline(1, 50, 1.0)])
    report = build_report(results, base_auctions=50, machine={}, config={})
    assert report["p99_ms"] is None
    assert report["steady_rate_latency"]["p99_ms"] is None
    assert report["pipeline_2_workers_cmds_per_s"] is None
    assert report["ratio_2_to_1_workers"] is None
    assert report["two_workers_busiest_share"] is None
    assert report["targets"]["steady_latency_met"] is False
    assert report["targets"]["two_workers_met"] is None


def test_cli_refuses_worker_lists_without_one_worker_and_malformed_lists() -> None:
    runner = CliRunner()
    no_one = runner.invoke(throughput_command, ["--workers", "2,3"])
    assert no_one.exit_code == 2
    assert "must include 1" in no_one.output
    bad = runner.invoke(throughput_command, ["--auction-scales", "1,x"])
    assert bad.exit_code == 2
    assert "comma-separated" in bad.output


def test_cli_has_one_engine_and_takes_its_settings() -> None:
    runner = CliRunner()
    gone = runner.invoke(throughput_command, ["--engines", "faust"])
    assert gone.exit_code == 2
    assert "No such option" in gone.output
    shown = runner.invoke(throughput_command, ["--help"])
    assert "--transaction-max-s" in shown.output
    assert "--consume-batch" in shown.output


def test_cpu_seconds_reads_what_processes_used_and_none_for_a_gone_one() -> None:
    started = cpu_seconds([os.getpid()])
    assert started is not None
    deadline = time.process_time() + 0.1
    while time.process_time() < deadline:  # burn a little CPU
        pass
    used = cpu_seconds([os.getpid()])
    assert used is not None
    assert used > started
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert cpu_seconds([os.getpid(), gone.pid]) is None
