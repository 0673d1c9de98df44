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
        "bench", "throughput", "--commands", "3000", "--ceiling-commands", "2000",
        "--auctions", "20", "--auction-scales", "1,5", "--workers", "1,2", "--repeats", "1",
        "--latency-seconds", "2", "--json", str(out),
        "--keep-topics",  # so that `outbid verify` can audit what the bench runs wrote (below)
        env=outbid_env,  # KAFKA_BOOTSTRAP_SERVERS and REDIS_URL set: the bench starts no servers
        timeout=480,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    report = orjson.loads(out.read_bytes())
    assert out.with_suffix(".png").stat().st_size > 10_000

    # what was measured: the commit, and the settings the workers ran with
    assert report["guarantee"] == "exactly_once"
    assert len(report["source"]["commit"]) == 40
    assert isinstance(report["source"]["dirty"], bool)
    config = report["config"]
    assert config["servers"] == "given"
    assert config["partition_verification"] == ["true"]  # the broker's default, untouched
    assert config["transaction_max_s"] > 0
    assert config["consume_batch"] > 0
    assert config["redis"] is True
    assert config["partitions"] == 8
    assert (config["commands"], config["auctions"], config["workers"]) == (3000, 20, [1, 2])
    assert config["steady_rate_per_s"] == 3000

    ceiling, one, two = (
        report["ceiling_cmds_per_s"],
        report["pipeline_cmds_per_s"],
        report["pipeline_2_workers_cmds_per_s"],
    )
    assert ceiling > 0
    assert report["ceiling_non_transactional_cmds_per_s"] > 0
    [transactional] = [c for c in report["raw"]["ceiling"] if c["transactional"]]
    assert transactional["commands"] == 2000
    assert transactional["transactions"] >= 1  # committed as the engine commits, not once
    assert one > 0
    assert two > 0
    assert report["ratio"] == pytest.approx(one / ceiling, rel=0.01)
    assert report["ratio_2_to_1_workers"] == pytest.approx(two / one, rel=0.01)
    assert 0.5 <= report["two_workers_busiest_share"] <= 1.0
    cpu = report["cpu_us_per_command"]
    assert cpu["1"]["workers"] > 0
    assert cpu["2"]["workers"] > 0
    assert cpu["1"]["broker"] is None
    assert report["worker_peak_rss_mb"] > 20  # a Python worker with Faust loaded

    runs = {(r["workers"], r["auctions"]): r for r in report["raw"]["pipeline"]}
    assert sorted(runs) == [(1, 20), (1, 100), (2, 20)]
    [warmup] = report["raw"]["warmup"]  # run first, kept apart from the medians
    assert (warmup["workers"], warmup["auctions"], warmup["commands"]) == (1, 20, 3000)
    for run in runs.values():
        assert "engine" not in run
        assert run["commands"] == 3000
        assert run["events"] > 0
        assert 1 <= run["transactions"] <= run["commands"]
        assert run["seconds"] > 0
        assert run["overall_cmds_per_s"] == pytest.approx(3000 / run["seconds"], rel=0.01)
        # each worker's timed commands, counted from its own /metrics
        assert len(run["worker_commands"]) == run["workers"]
        assert sum(run["worker_commands"]) == 3000
        assert run["worker_cpu_s"] > 0
        assert run["broker_cpu_s"] is None  # servers the bench did not start: not its to measure
        # the steady window exists only when the backlog outlasted the sending
        if run["steady_cmds_per_s"] is not None:
            assert run["steady_cmds_per_s"] > 0
            assert run["steady_window_s"] > 0
            assert run["cmds_per_s"] == pytest.approx(run["steady_cmds_per_s"], rel=0.01)
        else:
            assert run["cmds_per_s"] == pytest.approx(run["overall_cmds_per_s"], rel=0.01)
    assert [row["auctions"] for row in report["auction_scaling"]] == [20, 100]

    levels = report["latency"]
    assert [lv["share"] for lv in levels] == [0.25, 0.5, 0.75, 1.0, None]
    assert levels[-1]["offered_per_s"] == 3000
    for level in levels:
        assert level["sent"] > 0
        event, view = level["event_committed"], level["projection_committed"]
        assert 0 < view["count"] <= event["count"]
        # each event is paired with its view (one transaction commits both)
        assert view["count"] >= 0.9 * event["count"]
        assert 0 < view["p50_ms"] <= view["p99_ms"] <= view["p999_ms"] <= view["max_ms"]
        assert level["redis_visible"]["count"] > 0
    half = next(lv for lv in levels if lv["share"] == 0.5)["projection_committed"]
    assert (report["p50_ms"], report["p99_ms"], report["p999_ms"]) == (
        half["p50_ms"],
        half["p99_ms"],
        half["p999_ms"],
    )
    steady = report["steady_rate_latency"]
    assert steady["offered_per_s"] == 3000
    assert (steady["p50_ms"], steady["p99_ms"]) == (
        levels[-1]["projection_committed"]["p50_ms"],
        levels[-1]["projection_committed"]["p99_ms"],
    )

    machine = report["machine"]
    assert machine["cpu_count"] >= 1
    assert len(machine["load_avg_start"]) == len(machine["load_avg_end"]) == 3

    # The optimisations never cost the invariants: what the 1- and 2-worker runs wrote audits
    # clean (events, changelogs, snapshots and the Redis read model).
    from confluent_kafka.admin import AdminClient  # noqa: PLC0415

    topics = AdminClient({"bootstrap.servers": servers.kafka}).list_topics(timeout=15).topics
    for label in ("w1r0", "w2r0"):
        [commands] = [
            t for t in topics if t.startswith("bench-") and t.endswith(f"-{label}.bid-commands")
        ]
        audited = run_outbid(
            "verify",
            env={**outbid_env, "OUTBID_TOPIC_PREFIX": commands.removesuffix("bid-commands")},
            timeout=240,
        )
        assert audited.returncode == 0, audited.stdout[-3000:]
