"""The one engine in `faust -A app worker` against the real broker and Redis: every kind of record,
exactly once through kill -9 and rebalances, static membership, and incremental scale-out."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from app.devstack import processes
from app.devstack.workers import get_json
from app.topics.partitioner import partition_for
from app.web.routing import FORWARDED
from tests.conftest import OUTBID, run_outbid
from tests.e2e.conftest import Pipeline, read_all

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
PARTITIONS = 8


def committed_offsets(line: Pipeline, *, stable: bool = True) -> dict[int, int]:
    """The group's committed offsets. `stable` (a read_committed client) waits until no
    transaction has offsets pending for the partitions asked (KIP-447: the broker answers
    UNSTABLE_OFFSET_COMMIT and librdkafka asks again). Under a steady load some worker nearly
    always has one open: during a join that wait took up to 2.7 s and once timed out after 10 s,
    so partitions sampled that way looked paused while their workers committed every 50-150 ms.
    Not stable returns the last committed offsets at once."""
    group = Consumer(
        {
            "bootstrap.servers": line.bootstrap,
            "group.id": f"{line.prefix}outbid",
            "isolation.level": "read_committed" if stable else "read_uncommitted",
        }
    )
    tps = [TopicPartition(line.topic("bid-commands"), p) for p in range(PARTITIONS)]
    try:
        return {tp.partition: max(tp.offset, 0) for tp in group.committed(tps, timeout=10)}
    finally:
        group.close()


def committed_everything(line: Pipeline, timeout_s: float = 180) -> None:
    """Until the group's committed offset of every bid-commands partition has no record after it
    (transaction markers take offsets too, so "committed == end" is not the test). "No record"
    means the reader got to the end and found only markers: a read that returns nothing in time
    (a fresh consumer still connecting, or a transaction still open) proves nothing. And it must
    hold twice in a row: a transaction that commits between two reads can add records (re-routed
    copies) to a partition that looked finished."""
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
    quiet = 0
    try:
        while time.monotonic() < deadline:
            try:
                done = committed_offsets(line)
                ends = {tp.partition: reader.get_watermark_offsets(tp, timeout=10)[1] for tp in tps}
            except KafkaException:  # the group coordinator is still being elected
                time.sleep(0.5)
                continue
            behind = [p for p in ends if done[p] < ends[p]]
            if all(only_markers(reader, topic, p, done[p], ends[p]) for p in behind):
                quiet += 1
                if quiet >= 2:
                    return
            else:
                quiet = 0
            time.sleep(1.0)
    finally:
        reader.close()
    pytest.fail(f"bid-commands partitions {behind} not fully committed after {timeout_s:.0f}s")


def only_markers(reader: Consumer, topic: str, partition: int, start: int, end: int) -> bool:
    """True when the records of `topic[partition]` in [start, end) are all transaction markers."""
    reader.assign([TopicPartition(topic, partition, start)])
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if [m for m in reader.consume(100, 0.5) if not m.error()]:
                return False  # a command after the committed offset: not processed yet
            position = reader.position([TopicPartition(topic, partition)])[0].offset
            if position >= end:
                return True
        return False
    finally:
        reader.unassign()


def loadgen(line: Pipeline, commands: int, auctions: int, seed: int, rate: int = 0) -> None:
    sent = run_outbid(
        "loadgen",
        "--commands",
        str(commands),
        "--auctions",
        str(auctions),
        "--seed",
        str(seed),
        "--rate",
        str(rate),
        "--run-id",
        f"S{seed}",
        env=line.env,
        timeout=600,
    )
    assert sent.returncode == 0, sent.stderr


def verify(line: Pipeline, tmp_path: Path) -> dict[str, int]:
    report = tmp_path / "verify.json"
    done = run_outbid("verify", "--json", str(report), env=line.env, timeout=300)
    found = json.loads(report.read_text()) if report.exists() else {}
    assert done.returncode == 0, (found.get("problems"), done.stderr[-2000:])
    return dict(found["counts"])


def verified_once(line: Pipeline, tmp_path: Path) -> dict[str, int]:
    """Stops the workers, then `outbid verify` passes and every event is in the log once."""
    line.stop()
    counts = verify(line, tmp_path)
    events = read_all(line.bootstrap, line.topic("auction-events"))
    assert len(events) == counts["events"]
    assert len({json.loads(value)["event_id"] for _k, value, *_ in events if value}) == len(events)
    return counts


def wait_for_log(line: Pipeline, text: str, timeout_s: float = 90) -> str:
    """Waits until worker 1's log holds `text`, failing at once if the worker dies."""
    log_file, pid = line.specs[0].log_file, line.pids[1]
    deadline = time.monotonic() + timeout_s
    while text not in log_file.read_text() and time.monotonic() < deadline:
        assert processes.alive(pid), processes.tail(log_file, 30)
        time.sleep(0.5)
    assert text in log_file.read_text(), processes.tail(log_file, 30)
    return log_file.read_text()


def assignment(url: str) -> list[int]:
    _status, body = get_json(f"{url}/readyz", timeout=5)
    assigned = body.get("assigned") or {}
    assert isinstance(assigned, dict)
    return sorted(p for partitions in assigned.values() for p in partitions)


def recovered_lines(line: Pipeline, index: int) -> int:
    return len(re.findall(r"partition \d+ recovered", line.specs[index - 1].log_file.read_text()))


def test_worker_writes_every_kind_of_record_and_verify_passes(
    pipeline: Pipeline, tmp_path: Path
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
    unkeyed.produce(pipeline.topic("bid-commands"), key=b"S3-A-2", value=None)  # a null value
    unkeyed.flush(30)
    pipeline.start(1)
    committed_everything(pipeline)
    pipeline.stop()  # SIGTERM: commits what it holds
    counts = verify(pipeline, tmp_path)
    assert counts["commands"] == 4_000 + 6 + 5  # + the unkeyed ones' re-keyed copies
    assert counts["duplicates_absorbed"] > 0
    assert counts["dead_letters"] == counts["commands_invalid"] > 0
    assert counts["rerouted_as_expected"] == 5
    assert counts["aggregate_snapshots_checked"] > 0
    assert counts["auctions"] == 121  # 120 + the unkeyed bids' auction, never opened: ...
    assert counts["redis_keys"] == 120  # ... its bids are rejected, and Redis holds no view of it
    # the worker froze its start-up objects before the engine's thread started (tail latency)
    assert re.search(r"froze \d{5,} start-up objects", pipeline.specs[0].log_file.read_text())


def test_kill_9_and_rebalances_lose_nothing_and_apply_nothing_twice(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    pipeline.start(1)
    sender = threading.Thread(target=loadgen, args=(pipeline, 15_000, 300, 5, 3_000))
    sender.start()
    time.sleep(1.5)
    pipeline.start(1)  # a rebalance mid-load: worker 1 commits at the revoke, 2 recovers
    time.sleep(2)
    pipeline.kill_worker(1)  # kill -9 with a transaction open
    sender.join()
    loadgen(pipeline, 5_000, 300, seed=6)
    pipeline.restart_worker(1)  # the same instance: fences and aborts the dead one's transaction
    committed_everything(pipeline, timeout_s=240)
    counts = verified_once(pipeline, tmp_path)
    assert counts["commands"] == 20_000


def max_message_bytes(line: Pipeline, topic: str, value: str | None) -> None:
    """Override the topic's max.message.bytes (None: back to the broker's default)."""
    op = AlterConfigOpType.SET if value is not None else AlterConfigOpType.DELETE
    entry = ConfigEntry("max.message.bytes", value or "", incremental_operation=op)
    resource = ConfigResource("topic", line.topic(topic), incremental_configs=[entry])
    admin = AdminClient({"bootstrap.servers": line.bootstrap})
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)


def test_a_transaction_kafka_fails_mid_batch_is_aborted_and_redone_not_fatal(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """A record the broker refuses puts the open transaction in its abortable state from
    librdkafka's thread while the loop is still producing the batch's records; the next
    produce() then fails with _STATE ("Erroneous state"), which is not marked abortable. That
    used to leave the loop and stop the worker (a CI run met it after a rebalance, through a
    failed offsets request). The worker must abort, re-process from the committed offsets (with
    a backoff while it keeps failing) and go on once Kafka takes the records again."""
    max_message_bytes(pipeline, "auction-events", "200")  # every batch of events: too large
    loadgen(pipeline, 6_000, 200, seed=9)  # a backlog: the loop produces while deliveries fail
    pipeline.start(1)
    aborts = wait_for_log(pipeline, "Erroneous state").count("transaction aborted")
    log_file, pid = pipeline.specs[0].log_file, pipeline.pids[1]
    time.sleep(3)  # more aborts, with the backoff between them
    assert processes.alive(pid), processes.tail(log_file, 30)
    assert log_file.read_text().count("transaction aborted") > aborts
    with urllib.request.urlopen(f"{pipeline.urls()[0]}/metrics", timeout=10) as answer:
        metrics = answer.read().decode()
    counted = re.search(r"^outbid_transactions_aborted_total (\S+)$", metrics, re.MULTILINE)
    assert counted is not None
    assert float(counted.group(1)) > aborts
    max_message_bytes(pipeline, "auction-events", None)
    committed_everything(pipeline)
    counts = verified_once(pipeline, tmp_path)
    assert counts["commands"] == 6_000
    assert counts["events"] > 0


def test_a_restart_inside_the_session_timeout_moves_no_partition(pipeline: Pipeline) -> None:
    pipeline.start(2)
    before = {i: assignment(url) for i, url in enumerate(pipeline.urls(), 1)}
    assert sorted(before[1] + before[2]) == list(range(PARTITIONS))
    recovered_by_2 = recovered_lines(pipeline, 2)
    pipeline.stop_worker(1)  # a static member's clean stop does not leave the group
    pipeline.restart_worker(1)
    assert assignment(pipeline.urls()[0]) == before[1]
    assert assignment(pipeline.urls()[1]) == before[2]
    assert recovered_lines(pipeline, 2) == recovered_by_2  # worker 2 was never disturbed


def test_a_third_worker_takes_only_its_partitions_and_the_others_keep_processing(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    pipeline.start(2)
    before = {i: assignment(url) for i, url in enumerate(pipeline.urls(), 1)}
    recovered = {i: recovered_lines(pipeline, i) for i in (1, 2)}
    load = subprocess.Popen(  # a steady load for the whole join
        [*OUTBID, "loadgen", "--commands", "30000", "--rate", "1500", "--auctions", "400"],
        env=pipeline.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    samples: list[tuple[float, dict[int, int]]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            with contextlib.suppress(KafkaException):
                samples.append((time.monotonic(), committed_offsets(pipeline, stable=False)))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample)
    try:
        time.sleep(3)
        sampler.start()
        time.sleep(2)
        joined = time.monotonic()
        pipeline.start(1)  # waits until all three are ready
        ready = time.monotonic()
        time.sleep(5)
    finally:
        stop.set()
        if sampler.is_alive():
            sampler.join()
        load.terminate()
        load.wait(30)
    after = {i: assignment(url) for i, url in enumerate(pipeline.urls(), 1)}
    assert after[3], "the new worker got no partition"
    for i in (1, 2):
        assert set(after[i]) <= set(before[i]), "a kept worker was given another's partition"
        # cooperative-sticky: kept partitions were never revoked and re-recovered
        assert recovered_lines(pipeline, i) == recovered[i]
    kept = [p for i in (1, 2) for p in after[i]]
    # Progress from the join until 5 s after it: a kept partition pauses while its worker's
    # transactions are fenced by the two generation bumps (docs/scaling.md: 0.5-2.6 s here). A
    # stop-the-world rebalance would revoke and re-recover the kept partitions (checked above)
    # and stop them for the whole join.
    during = [offsets for t, offsets in samples if t >= joined]
    assert len(during) >= 2
    stalled = [p for p in kept if during[-1][p] == during[0][p]]
    assert not stalled, f"kept partitions {stalled} made no progress while the worker joined"
    longest = _longest_pause(samples, kept, joined, ready)
    print(
        f"scale-out: join took {ready - joined:.1f} s; longest pause of a kept partition "
        f"{longest:.2f} s; moved {sorted(set(range(PARTITIONS)) - set(kept))}"
    )
    # nothing lost, nothing applied twice through the join (a kept worker's transaction fenced
    # by it, usually one or two per join, is aborted and redone from its committed offsets)
    committed_everything(pipeline)
    assert verified_once(pipeline, tmp_path)["commands"] > 0


def _longest_pause(
    samples: list[tuple[float, dict[int, int]]], partitions: list[int], start: float, end: float
) -> float:
    longest = 0.0
    for p in partitions:
        last_change = start
        previous = None
        for t, offsets in samples:
            if t < start or t > end:
                continue
            if previous is not None and offsets[p] != previous:
                longest = max(longest, t - last_change)
                last_change = t
            previous = offsets[p]
        longest = max(longest, end - last_change)
    return longest


def test_a_worker_that_does_not_own_the_partition_never_answers_for_it(
    pipeline: Pipeline,
) -> None:
    pipeline.start(2)
    loadgen(pipeline, 300, 30, seed=8)
    committed_everything(pipeline)
    urls = pipeline.urls()
    owned = {url: set(assignment(url)) for url in urls}
    auction = "S8-1"  # loadgen names auctions {run id}-{n}
    partition = partition_for(auction.encode(), PARTITIONS)
    owner = next(url for url in urls if partition in owned[url])
    other = next(url for url in urls if url != owner)
    for url in urls:  # any worker answers, the other one by asking the owner
        status, body = get_json(f"{url}/auctions/{auction}", timeout=10)
        assert status == 200, body
    import urllib.error  # noqa: PLC0415

    # A request already forwarded once is not forwarded again: the non-owner says 503.
    forwarded = urllib.request.Request(f"{other}/auctions/{auction}", headers={FORWARDED: "1"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(forwarded, timeout=10)
    with refused.value as answer:  # closed here, or its socket leaks into a later test
        assert answer.code == 503
        assert answer.headers["Retry-After"]
