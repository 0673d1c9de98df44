"""`outbid hotpath` (app/hotpath) against the real broker and Redis: the same records as the Faust
agents, exactly once through kill -9 and rebalances, and Faust workers take over where it stops."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from app.devstack import processes
from app.devstack.workers import get_json
from app.domain import PlaceBid
from app.topics.spec import HIGHEST_BIDS_CHANGELOG
from tests.conftest import OUTBID, REPO, run_outbid
from tests.e2e.conftest import Pipeline, produce_commands, read_all

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
PARTITIONS = 8


class HotPaths:
    """`outbid hotpath` processes, as a user starts them, with their logs kept."""

    def __init__(self, line: Pipeline) -> None:
        self.line = line
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def log(self, instance: str) -> Path:
        return self.line.root / f"hotpath-{instance}.log"

    def start(self, instance: str) -> None:
        env = {**self.line.env, "OUTBID_STATE_DIR": str(self.line.root / f"hp-{instance}")}
        command = [*OUTBID, "hotpath", "--instance", instance]
        self.procs[instance] = processes.spawn(command, self.log(instance), env=env, cwd=REPO)

    def kill(self, instance: str) -> None:
        processes.kill(self.procs.pop(instance).pid)

    def stop(self, instance: str) -> int:
        proc = self.procs.pop(instance)
        proc.terminate()
        return proc.wait(60)

    def stop_all(self) -> None:
        for instance in list(self.procs):
            self.stop(instance)

    def tails(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{processes.tail(path, 20)}"
            for path in sorted(self.line.root.glob("hotpath-*.log"))
        )


@pytest.fixture
def hotpaths(pipeline: Pipeline) -> Iterator[HotPaths]:
    started = HotPaths(pipeline)
    yield started
    started.stop_all()
    print(started.tails())


def committed_everything(line: Pipeline, timeout_s: float = 180) -> None:
    """Until the group's committed offset of every bid-commands partition has no record after it
    (transaction markers take offsets too, so "committed == end" is not the test)."""
    group = Consumer({"bootstrap.servers": line.bootstrap, "group.id": f"{line.prefix}outbid"})
    reader = Consumer(
        {
            "bootstrap.servers": line.bootstrap,
            "group.id": f"{line.prefix}probe",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    topic = line.topic("bid-commands")
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    deadline = time.monotonic() + timeout_s
    behind: list[int] = []
    try:
        while time.monotonic() < deadline:
            try:
                ends = {tp.partition: group.get_watermark_offsets(tp, timeout=10)[1] for tp in tps}
                done = {tp.partition: max(tp.offset, 0) for tp in group.committed(tps, timeout=10)}
            except KafkaException:  # the group coordinator is still being elected
                time.sleep(0.5)
                continue
            behind = [p for p in ends if done[p] < ends[p]]
            if behind:
                reader.assign([TopicPartition(topic, p, done[p]) for p in behind])
                if not [m for m in reader.consume(100, 1.0) if not m.error()]:
                    return  # only markers after the committed offsets
                reader.unassign()
            else:
                return
            time.sleep(0.5)
    finally:
        group.close()
        reader.close()
    pytest.fail(f"bid-commands partitions {behind} not fully committed after {timeout_s:.0f}s")


def loadgen(
    line: Pipeline, commands: int, auctions: int, seed: int, run_id: str | None = None
) -> None:
    sent = run_outbid(
        "loadgen",
        "--commands",
        str(commands),
        "--auctions",
        str(auctions),
        "--seed",
        str(seed),
        "--run-id",
        run_id or f"S{seed}",
        env=line.env,
    )
    assert sent.returncode == 0, sent.stderr


def verify(line: Pipeline, tmp_path: Path) -> dict[str, int]:
    report = tmp_path / "verify.json"
    done = run_outbid("verify", "--json", str(report), env=line.env, timeout=300)
    found = json.loads(report.read_text()) if report.exists() else {}
    assert done.returncode == 0, (found.get("problems"), done.stderr[-2000:])
    return dict(found["counts"])


def test_hotpath_writes_what_the_agents_write_and_verify_passes(
    pipeline: Pipeline, hotpaths: HotPaths, tmp_path: Path
) -> None:
    loadgen(pipeline, 4_000, 120, seed=3)  # 1% duplicates, 1% garbage
    unkeyed = Producer({"bootstrap.servers": pipeline.bootstrap})
    for n in range(5):  # typed into a console producer without a key
        unkeyed.produce(
            pipeline.topic("bid-commands"),
            value=json.dumps(
                {
                    "type": "PlaceBid",
                    "command_id": f"unkeyed-{n}",
                    "issued_at": "2026-01-01T00:00:00Z",
                    "auction_id": "S3-A-1",
                    "bidder_id": f"u{n}",
                    "amount": 10**9 + n,
                    "currency": "EUR",
                }
            ).encode(),
            partition=n % PARTITIONS,
        )
    unkeyed.flush(30)
    hotpaths.start("a")
    committed_everything(pipeline)
    assert hotpaths.stop("a") == 0  # SIGTERM: commits what it holds and leaves the group
    counts = verify(pipeline, tmp_path)
    assert counts["commands"] == 4_000 + 5 + 5  # the unkeyed ones, and their re-keyed copies
    assert counts["duplicates_absorbed"] > 0
    assert counts["dead_letters"] == counts["commands_invalid"] > 0
    assert counts["rerouted_as_expected"] == 5
    assert counts["aggregate_snapshots_checked"] > 0
    assert counts["redis_keys"] == counts["auctions"] == 121  # 120 + the unkeyed bids' auction


def test_kill_9_and_rebalances_lose_nothing_and_apply_nothing_twice(
    pipeline: Pipeline, hotpaths: HotPaths, tmp_path: Path
) -> None:
    hotpaths.start("a")
    loadgen(pipeline, 15_000, 300, seed=5)
    time.sleep(1.5)
    hotpaths.start("b")  # a rebalance mid-load: a commits at the revoke, b recovers
    time.sleep(3)
    hotpaths.kill("a")  # kill -9 with a transaction open
    loadgen(pipeline, 5_000, 300, seed=6)
    time.sleep(1)
    hotpaths.start("a")  # the same transactional id: fences and aborts the dead one's
    committed_everything(pipeline, timeout_s=240)
    hotpaths.stop_all()
    counts = verify(pipeline, tmp_path)
    assert counts["commands"] == 20_000
    events = read_all(pipeline.bootstrap, pipeline.topic("auction-events"))
    assert len(events) == counts["events"]
    assert len({json.loads(value)["event_id"] for _k, value, *_ in events if value}) == len(events)


def test_faust_workers_take_over_where_the_hotpath_stopped(
    pipeline: Pipeline, hotpaths: HotPaths, tmp_path: Path
) -> None:
    hotpaths.start("a")
    loadgen(pipeline, 3_000, 80, seed=7)
    committed_everything(pipeline)
    assert hotpaths.stop("a") == 0
    views = {
        json.loads(value)["auction_id"]: json.loads(value)
        for _k, value, *_ in read_all(pipeline.bootstrap, pipeline.topic(HIGHEST_BIDS_CHANGELOG))
        if value
    }
    pipeline.start(1)  # a Faust worker: recovers both tables from the hot path's changelogs
    for auction_id, want in list(views.items())[:20]:
        status, got = get_json(f"{pipeline.urls()[0]}/auctions/{auction_id}", timeout=5)
        assert status == 200
        assert {k: got[k] for k in ("seq", "highest_bid", "highest_bidder", "status")} == {
            k: want[k] for k in ("seq", "highest_bid", "highest_bidder", "status")
        }
    # new bids on the same auctions, decided by Faust against the hot path's state
    now = datetime.now(UTC)
    produce_commands(
        pipeline,
        (
            PlaceBid(
                command_id=f"faust-{n}",
                issued_at=now,
                auction_id=f"S7-{n % 80}",
                bidder_id=f"late-{n}",
                amount=10**9 + n,
                currency="EUR",
            )
            for n in range(400)
        ),
    )
    committed_everything(pipeline)
    # while the Faust worker holds the group, the hot path refuses to start beside it
    refused = run_outbid("hotpath", "--instance", "late", env=pipeline.env, timeout=120)
    assert refused.returncode == 2
    assert "held by Faust workers" in refused.stderr
    pipeline.stop()
    counts = verify(pipeline, tmp_path)
    assert counts["commands"] == 3_400
    assert counts["events_BidAccepted"] >= 400  # every late bid beats the hot path's highest
