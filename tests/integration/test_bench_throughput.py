"""A tiny `outbid bench throughput` against the session's real Kafka and Redis, with real workers.

Checks that the report is complete and self-consistent; never how fast anything was.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.conftest import Servers, run_outbid

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_tiny_bench_reports_consistent_non_zero_numbers(
    servers: Servers, outbid_env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "bench.json"
    done = run_outbid(
        "bench",
        "throughput",
        "--commands",
        "300",
        "--ceiling-commands",
        "2000",
        "--auctions",
        "20",
        "--auction-scales",
        "1,5",
        "--workers",
        "1",
        "--repeats",
        "1",
        "--latency-seconds",
        "2",
        "--json",
        str(out),
        "--keep-topics",  # so that `outbid verify` can audit what the bench runs wrote (below)
        env=outbid_env,  # KAFKA_BOOTSTRAP_SERVERS and REDIS_URL set: the bench starts no servers
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    report = orjson.loads(out.read_bytes())
    assert out.with_suffix(".png").stat().st_size > 10_000

    assert report["guarantee"] == "exactly_once"
    assert report["config"]["servers"] == "given"
    ceiling, pipeline = report["ceiling_cmds_per_s"], report["pipeline_cmds_per_s"]
    assert ceiling > 0
    assert report["ceiling_non_transactional_cmds_per_s"] > 0
    assert pipeline > 0
    assert report["ratio"] == pytest.approx(pipeline / ceiling, rel=0.01)
    assert report["worker_peak_rss_mb"] > 20  # a Python worker with Faust loaded

    [run_1x, run_5x] = sorted(
        (r for r in report["raw"]["pipeline"] if r["workers"] == 1 and r["engine"] == "faust"),
        key=lambda r: r["auctions"],
    )
    assert (run_1x["auctions"], run_5x["auctions"]) == (20, 100)
    for run in (run_1x, run_5x):
        assert run["commands"] == 300
        assert run["events"] > 0
        # every command is decided before its events are projected
        assert 0 < run["decide_seconds"] <= run["seconds"]
    assert [row["auctions"] for row in report["auction_scaling"]] == [20, 100]

    levels = report["latency"]
    assert [lv["share"] for lv in levels] == [0.25, 0.5, 0.75, 1.0]
    for level in levels:
        assert level["sent"] > 0
        event, view = level["event_committed"], level["projection_committed"]
        assert 0 < view["count"] <= level["sent"]
        assert 0 < view["p50_ms"] <= view["p99_ms"] <= view["p999_ms"] <= view["max_ms"]
        # a view is committed after the event it folds: per command, so per quantile
        assert event["p50_ms"] <= view["p50_ms"]
        assert event["p99_ms"] <= view["p99_ms"]
    half = next(lv for lv in levels if lv["share"] == 0.5)["projection_committed"]
    assert (report["p50_ms"], report["p99_ms"], report["p999_ms"]) == (
        half["p50_ms"],
        half["p99_ms"],
        half["p999_ms"],
    )

    # the same measurements of `outbid hotpath`, against the same run's ceiling
    hotpath = report["hotpath"]
    assert hotpath["pipeline_cmds_per_s"] > 0
    assert hotpath["ratio"] == pytest.approx(hotpath["pipeline_cmds_per_s"] / ceiling, rel=0.01)
    assert hotpath["worker_peak_rss_mb"] > 20
    assert [row["auctions"] for row in hotpath["auction_scaling"]] == [20, 100]
    hot_runs = [r for r in report["raw"]["pipeline"] if r["engine"] == "hotpath"]
    assert sorted(r["auctions"] for r in hot_runs) == [20, 100]
    assert all(r["commands"] == 300 and r["events"] > 0 for r in hot_runs)
    assert [lv["share"] for lv in hotpath["latency"]] == [0.25, 0.5, 0.75, 1.0]
    for level in hotpath["latency"]:
        event = level["event_committed"]  # every command's events, and its view with them
        assert event["count"] > 0
        assert 0 < event["p50_ms"] <= event["p99_ms"] <= event["max_ms"]
    hot_half = hotpath["latency"][1]["event_committed"]
    assert (hotpath["p50_ms"], hotpath["p99_ms"]) == (hot_half["p50_ms"], hot_half["p99_ms"])

    machine = report["machine"]
    assert machine["cpu_count"] >= 1
    assert len(machine["load_avg_start"]) == len(machine["load_avg_end"]) == 3

    # The optimisations never cost the invariants: the 1-process runs of both engines audit clean.
    from confluent_kafka.admin import AdminClient  # noqa: PLC0415

    topics = AdminClient({"bootstrap.servers": servers.kafka}).list_topics(timeout=15).topics
    for label in ("fw1r0", "hw1r0"):
        [commands] = [
            t for t in topics if t.startswith("bench-") and t.endswith(f"-{label}.bid-commands")
        ]
        audited = run_outbid(
            "verify",
            env={**outbid_env, "OUTBID_TOPIC_PREFIX": commands.removesuffix("bid-commands")},
            timeout=240,
        )
        assert audited.returncode == 0, audited.stdout[-3000:]
