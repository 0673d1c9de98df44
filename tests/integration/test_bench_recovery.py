"""A tiny `outbid bench recovery` against the session's real Kafka, with real workers.

Checks that the report is complete and that each method did what it claims (replayed records,
restored snapshots); never how fast anything was.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.conftest import Servers, run_outbid
from tests.s3_server import S3Server

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_tiny_recovery_bench_measures_each_method(
    servers: Servers, outbid_env: dict[str, str], s3_server: S3Server, tmp_path: Path
) -> None:
    env = outbid_env | {  # the session's object store for (d)
        k: v for k, v in s3_server.env("unused", "").items() if k != "OUTBID_SNAPSHOT_URL"
    }
    out = tmp_path / "recovery.json"
    done = run_outbid(
        "bench", "recovery", "--histories", "4000,8000", "--auctions", "200", "--tail", "500",
        "--repeats", "1", "--json", str(out),
        env=env,  # KAFKA_BOOTSTRAP_SERVERS and OUTBID_S3_ENDPOINT_URL set: it starts no servers
        timeout=400,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    report = orjson.loads(out.read_bytes())
    assert out.with_suffix(".png").stat().st_size > 10_000
    assert [h["history_events"] for h in report["histories"]] == [4000, 8000]
    assert len(report["source"]["commit"]) == 40
    assert report["config"]["tables"] == ["auctions", "highest_bids", "bids_per_minute"]
    every_partition = dict.fromkeys(report["config"]["tables"], 8)
    for row in report["histories"]:
        assert row["auctions"] == 200
        assert row["tail_events"] == 500
        assert row["snapshot_bytes"] > 0
        assert row["speedup"] == pytest.approx(
            row["changelog_recovery_s"] / row["snapshot_recovery_s"], rel=0.01
        )
        runs = {r["method"]: r for r in row["runs"]}
        changelog, snapshot, from_s3 = runs["changelog"], runs["snapshot"], runs["snapshot_s3"]
        # (b) replays every changelog record (one view per decided command) from nothing;
        # (c) restores every partition of every table and replays only the tail.
        assert changelog["records_replayed"]["highest_bids"] >= row["history_events"]
        assert changelog["records_replayed"]["bids_per_minute"] > 0
        assert changelog["snapshots_restored"] == dict.fromkeys(every_partition, 0)
        assert snapshot["snapshots_restored"] == every_partition
        assert 0 < snapshot["records_replayed"]["highest_bids"] <= row["tail_events"]
        # (d) the same, from the object store
        assert from_s3["snapshots_restored"] == every_partition
        assert 0 < from_s3["records_replayed"]["highest_bids"] <= row["tail_events"]
        assert row["snapshot_s3_recovery_s"] == pytest.approx(from_s3["seconds"], abs=0.001)
        for run in (changelog, snapshot, from_s3):
            assert 0 < run["engine_recovery_s"] < run["seconds"]  # start-up comes on top
            assert 0 < run["ready_s"] <= run["seconds"]
        assert runs["replay"]["seconds"] > 0
    assert report["history_events"] == 4000
