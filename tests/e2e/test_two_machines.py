"""Two machines, simulated honestly: workers that share nothing but Kafka and the object store.

Worker A builds state under load and snapshots it to S3 (a real SeaweedFS); A is killed and its
whole state is deleted; worker B, with its own empty state folder and no snapshot folder at all,
takes A's partitions, restores them from the object store and replays only the changelog tails.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import boto3
import pytest

from app.chaos.probes import settle_transactions
from app.devstack.workers import get_json
from tests.e2e.conftest import Pipeline, read_all
from tests.e2e.test_snapshots import (
    TABLES,
    assert_answers_match_event_log,
    assert_verify_passes,
    caught_up,
    loadgen,
    metric,
    wait_for,
)
from tests.s3_server import S3Server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def machine(line: Pipeline, s3: S3Server, bucket: str, name: str, root: Path) -> None:
    """The pipeline's next worker runs as machine `name`: its own state, snapshots in S3."""
    line.env.update(
        s3.env(bucket, "cluster-1"),
        OUTBID_STATE_DIR=str(root / name / "state"),
        OUTBID_SNAPSHOT_DIR=str(root / name / "never-used"),
        OUTBID_SNAPSHOT_INTERVAL_S="1",
        OUTBID_SNAPSHOT_EVERY_WRITES="150",
        OUTBID_SNAPSHOT_KEEP="2",
    )


def snapshotted_partitions(s3: S3Server, bucket: str, group: str, table: str) -> set[int]:
    client = boto3.client(
        "s3",
        endpoint_url=s3.endpoint,
        region_name="us-east-1",
        aws_access_key_id=s3.access_key,
        aws_secret_access_key=s3.secret_key,
    )
    found = client.list_objects_v2(Bucket=bucket, Prefix=f"cluster-1/{group}/{table}/")
    return {
        int(item["Key"].split("/")[3])
        for item in found.get("Contents", [])
        if item["Key"].endswith(".json")
    }


def test_a_worker_on_another_machine_restores_from_the_object_store_and_replays_only_the_tail(
    pipeline: Pipeline, s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    group = f"{pipeline.prefix}outbid"
    machine(pipeline, s3_server, s3_bucket, "a", tmp_path)
    pipeline.start(1)
    load = loadgen(pipeline, 6000, 400, "TWO")
    wait_for(
        lambda: all(
            len(snapshotted_partitions(s3_server, s3_bucket, group, t)) == 8 for t in TABLES
        ),
        "a snapshot of every table partition in the object store",
    )
    pipeline.kill_worker(1)  # machine A is gone, mid-load, with everything on it
    shutil.rmtree(pipeline.specs[0].data_dir, ignore_errors=True)
    shutil.rmtree(tmp_path / "a", ignore_errors=True)

    machine(pipeline, s3_server, s3_bucket, "b", tmp_path)
    pipeline.start(1)  # worker 2, a fresh folder; it gets the partitions once A's session ends
    url = pipeline.urls()[0]
    wait_for(
        lambda: get_json(f"{url}/readyz", timeout=5)[0] == 200,
        "machine B to own and recover every partition",
    )
    for table in TABLES:
        assert metric(url, "outbid_snapshot_restores_total", table) == 8, table
    _out, err = load.communicate(timeout=120)
    assert load.returncode == 0, err
    wait_for(lambda: caught_up(pipeline), "machine B to catch up")
    assert not (tmp_path / "b" / "never-used").exists()  # no snapshot folder was involved
    # A's open transaction: B (another instance) cannot fence it, so read_committed readers of
    # the log wait at its first record until the broker aborts it (transaction.timeout.ms, 30 s;
    # docs/guarantees.md). B's answers come from its tables and do not wait; the fold below does.
    written = ["auction-events", *(f"outbid-{table}-changelog" for table in TABLES)]
    settle_transactions(
        {"bootstrap.servers": pipeline.bootstrap}, [pipeline.topic(t) for t in written]
    )

    # B replayed the changelog tails after A's snapshots, not the history.
    changelog = read_all(pipeline.bootstrap, pipeline.topic("outbid-auctions-changelog"))
    replayed = metric(url, "outbid_recovery_records_total", "auctions")
    # (How much of it is the tail depends on when A was killed after its snapshots: on a loaded
    # machine A may process for a while longer, so only "not the whole changelog" is certain.)
    assert replayed <= len(changelog) - 8, (replayed, len(changelog))
    assert assert_answers_match_event_log(pipeline) == 300
    assert_verify_passes(pipeline)
