"""Every record a real producer can write is read (issue #13): each Kafka codec from both CLI
producers, aborted transactions, records beyond the fetch and produce limits, and header bytes of
any kind, through one real worker, then `outbid verify`, `outbid rebuild` and `outbid dlq replay`.

One topic set and one worker serve the whole module; each test writes its own auctions.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from agents.dead_letters import MAX_PARKED_BYTES, REASON, TRUNCATED
from agents.records import Headers
from app.audit.reader import TopicReader
from app.devstack import processes
from app.devstack.workers import get_json
from app.domain import Command, OpenAuction, PlaceBid, decode_event, encode_command
from app.engine.kafka import CLIENT_ID_PREFIX
from app.sample import sample_commands
from tests.conftest import Servers, run_outbid
from tests.e2e.conftest import Pipeline, read_all
from tests.e2e.test_engine import committed_everything, verify
from tests.e2e.test_pipeline import expected_views, wait_until_views_match

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CODECS = ("gzip", "snappy", "lz4", "zstd")
PRODUCERS = ("kcat", "console")
PARTITIONS = 8
BIG = 2_000_000  # bytes: twice bid-commands' max.message.bytes (topics.yaml), compressed below it
# Uncompressed, just under bid-commands' max.message.bytes (1,048,576 per batch), so the broker
# takes it, and over librdkafka's default message.max.bytes (1,000,000) for writing it again.
NEAR_LIMIT = 1_040_000
# librdkafka's debug "msg" line for each fetch it hands over, ending in the batch's codec.
FETCHED = re.compile(
    r"on (?P<topic>\S+) \[(?P<partition>\d+)\] fetch queue \(.*"
    r"last_offset (?P<last>\d+), .*, (?P<codec>\w+)\)$"
)


@dataclass(frozen=True)
class Sent:
    commands: list[Command]
    offsets: dict[int, tuple[int, int]]  # partition -> [first, end) of what the producer wrote


@dataclass(frozen=True)
class Batch:
    partition: int
    last_offset: int
    codec: str  # "uncompressed" when a producer's compression did not make the batch smaller


@dataclass(frozen=True)
class Fed:
    sent: dict[tuple[str, str], Sent]  # (producer, codec) ->
    batches: list[Batch]  # every record batch of bid-commands after feeding


@pytest.fixture(scope="module")
def line(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    root = tmp_path_factory.mktemp("codecs")
    prefix = f"t-codecs-{uuid.uuid4().hex[:6]}."
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": servers.kafka,
        "REDIS_URL": servers.redis,
        "OUTBID_TOPIC_PREFIX": prefix,
        "OUTBID_STATE_DIR": str(root / "state"),
    }
    applied = run_outbid("topics", "apply", env=env)
    assert applied.returncode == 0, applied.stderr
    pipeline = Pipeline(env, prefix, root / "workers")
    try:
        pipeline.start(1)
        yield pipeline
    finally:
        pipeline.stop()
        for spec in pipeline.specs:
            if spec.log_file.exists():
                print(f"--- {spec.log_file} (tail)\n{processes.tail(spec.log_file, 15)}")


@pytest.fixture(scope="module")
def fed(line: Pipeline) -> Fed:
    """Each producer x codec writes its own auctions, one after the other, so the offsets each
    wrote are known; then the codec of every batch is read back from the broker."""
    sent = {}
    for producer in PRODUCERS:
        for codec in CODECS:
            commands = list(
                sample_commands(
                    auctions=3, bids_per_auction=10, seed=13, prefix=f"{producer}-{codec}"
                )
            )
            before = end_offsets(line)
            if producer == "kcat":
                kcat(line, keyed(commands), "-z", codec)
            else:
                console(line, keyed(commands), "--compression-codec", codec)
            after = end_offsets(line)
            sent[producer, codec] = Sent(
                commands, {p: (before[p], after[p]) for p in after if after[p] > before[p]}
            )
    return Fed(sent, stored_batches(line, end_offsets(line)))


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("producer", PRODUCERS)
def test_every_command_a_cli_producer_compresses_is_decided(
    line: Pipeline, fed: Fed, producer: str, codec: str
) -> None:
    sent = fed.sent[producer, codec]
    codecs = {
        batch.codec
        for batch in fed.batches
        if batch.partition in sent.offsets
        and sent.offsets[batch.partition][0] <= batch.last_offset < sent.offsets[batch.partition][1]
    }
    assert codecs == {codec}, f"{producer} wrote batches compressed as {codecs}"
    wait_until_views_match(line.urls(), expected_views(sent.commands))
    missing = {c.command_id for c in sent.commands} - decided(line)
    assert not missing, f"commands without an outcome in auction-events: {sorted(missing)[:5]}"


def test_the_worker_consumes_through_its_engine_alone(line: Pipeline) -> None:
    """Faust's own Kafka client (aiokafka) never joins: the engine's librdkafka consumer is the
    only member of the group, so no codec is left to a client the project does not configure."""
    group = line.topic("outbid")
    admin = AdminClient({"bootstrap.servers": line.bootstrap})
    described = admin.describe_consumer_groups([group])[group].result(30)
    clients = [member.client_id for member in described.members]
    assert len(clients) == 1, clients
    assert clients[0].startswith(CLIENT_ID_PREFIX), clients


def test_commands_with_header_bytes_of_any_kind_are_decided(line: Pipeline) -> None:
    """Header names and values that are not UTF-8, repeated names, empty names, names without a
    value: none of it matters to the worker. A null value is a dead letter, never a stop."""
    k1, k2, k3 = auction("hdr-1", 150), auction("hdr-2", 160), auction("hdr-3", 170)
    kcat(
        line,
        keyed(k1),
        "-z",
        "lz4",
        *("-H", b"\xff\xfe=\xc3\x28", "-H", "dup=1", "-H", "dup=2", "-H", "bare"),
        *("-H", b"binary=\x80\x81\xfe\xff"),
    )
    console(
        line,
        b"".join(
            b"dup:1,dup:2,:empty-name,blank:\t" + record for record in keyed(k2).splitlines(True)
        ),
        *("--compression-codec", "zstd", "--property", "parse.headers=true"),
    )
    odd = Producer(
        {
            "bootstrap.servers": line.bootstrap,
            "partitioner": "murmur2_random",  # where the Java client puts a key
            "compression.type": "snappy",
        }
    )
    headers: Headers = [
        ("", b"\x00\xff"),
        ("", None),
        ("\u00e9", b"\xe9"),
        ("dup", b""),
        ("dup", b""),
    ]
    send(line, odd, k3, headers)
    kcat(line, b"null-1|\n", "-z", "gzip", "-Z")  # -Z: an empty value is sent as null
    wait_until_views_match(line.urls(), expected_views([*k1, *k2, *k3]))
    read = commands_read(line, {b"hdr-1", b"hdr-2", b"hdr-3"})  # as `outbid verify` reads them
    assert read[b"hdr-1"] == [{}, {}]  # a header name that is not UTF-8: no headers at all
    assert read[b"hdr-2"] == [{"dup": b"2", "": b"empty-name", "blank": b""}] * 2
    assert read[b"hdr-3"] == [{"": b"\x00\xff", "\u00e9": b"\xe9", "dup": b""}] * 2
    parked = dead_letters(line, b"null-1")
    assert len(parked) == 1
    assert parked[0][1] is None


def test_records_beyond_the_fetch_and_produce_limits_are_dead_lettered_and_the_partition_moves_on(
    line: Pipeline,
) -> None:
    """A record the broker takes (compressed under max.message.bytes) but no producer could write
    again uncompressed: parked cut short with its original sizes, and the next command decided."""
    padded = b'{"type":"PlaceBid","auction_id":"big-1","pad":"' + b"x" * BIG + b'"}'
    commands = {n: auction(f"big-{n}", 200) for n in (1, 2, 3)}
    huge = {1: padded, 2: padded.replace(b"big-1", b"big-2"), 3: b"y" * NEAR_LIMIT}

    def around(n: int) -> bytes:  # open, the huge record, a bid: one partition, in this order
        opened, bid = keyed(commands[n]).splitlines(True)
        return opened + f"big-{n}|".encode() + huge[n] + b"\n" + bid

    kcat(line, around(1), "-z", "zstd", "-X", "message.max.bytes=3000000")
    console(
        line,
        around(2),
        *("--compression-codec", "gzip", "--producer-property", "max.request.size=3000000"),
    )
    kcat(line, around(3), "-X", "message.max.bytes=2000000")  # uncompressed
    wait_until_views_match(line.urls(), expected_views([c for n in commands for c in commands[n]]))
    for n, value in huge.items():
        parked = dead_letters(line, f"big-{n}".encode())
        assert len(parked) == 1, n
        _, stored, headers = parked[0]
        assert headers[REASON] == b"too_large"
        assert headers[TRUNCATED] == f"key=5 value={len(value)}".encode()
        assert stored is not None
        assert len(stored) == MAX_PARKED_BYTES - len(b"big-1")
        assert value.startswith(stored)


def test_commands_of_an_aborted_transaction_are_never_decided(line: Pipeline) -> None:
    kept, dropped = auction("txn-kept", 300), auction("txn-aborted", 500)
    kcat(line, keyed(kept), "-z", "snappy")
    producer = Producer(
        {
            "bootstrap.servers": line.bootstrap,
            "transactional.id": f"{line.prefix}aborting-producer",
            "partitioner": "murmur2_random",
            "compression.type": "zstd",
        }
    )
    producer.init_transactions(30)
    doomed = [*dropped, bid("txn-kept", 9_999, "aborted")]
    producer.begin_transaction()
    send(line, producer, doomed)  # on the broker, inside the open transaction
    producer.abort_transaction(30)
    producer.begin_transaction()
    send(line, producer, [bid("txn-kept", 400, "committed")])
    producer.commit_transaction(30)
    kcat(line, keyed([bid("txn-kept", 450, "after")]), "-z", "lz4")
    wait_until_views_match(
        line.urls(),
        {"txn-kept": {"status": "open", "highest_bid": 450, "highest_bidder": "after", "seq": 4}},
    )
    status, _ = get_json(f"{line.urls()[0]}/auctions/txn-aborted", timeout=10)
    assert status == 404
    assert not decided(line) & {c.command_id for c in doomed}


def test_verify_rebuild_and_dlq_replay_read_every_record(
    line: Pipeline, fed: Fed, tmp_path: Path
) -> None:
    """Runs last: it audits what every test above wrote, the worker stopped."""
    committed_everything(line)
    line.stop()
    counts = verify(line, tmp_path)
    assert counts["commands"] >= sum(len(s.commands) for s in fed.sent.values())
    report = tmp_path / "rebuild.json"
    rebuilt = run_outbid(
        *("rebuild", "highest-bids", "--from-scratch", "--out", str(tmp_path / "rebuild")),
        *("--json", str(report)),
        env=line.env,
        timeout=300,
    )
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    result = orjson.loads(report.read_bytes())
    assert (result["differences"], result["events"]) == (0, counts["events"])
    replay = run_outbid("dlq", "replay", "--dry-run", env=line.env, timeout=120)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    would = re.search(r"would replay (\d+) record", replay.stdout)
    truncated = re.search(r"too_large \(truncated\) (\d+)", replay.stdout)
    assert would, replay.stdout
    assert int(would[1]) + int(truncated[1] if truncated else 0) == counts["dead_letters"]


# --- producers --------------------------------------------------------------------------------


def kcat(line: Pipeline, payload: bytes, *args: str | bytes) -> None:
    """The Debian kcat, keyed "key|value" lines, placed by murmur2 as the Java client does."""
    found = shutil.which("kcat")
    assert found, "kcat must be installed (scripts/setup.sh installs it)"
    done = subprocess.run(
        [
            *(found, "-P", "-b", line.bootstrap, "-t", line.topic("bid-commands"), "-K", "|"),
            *("-X", "partitioner=murmur2_random", *args),
        ],
        input=payload,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def console(line: Pipeline, payload: bytes, *args: str) -> None:
    """Apache Kafka's kafka-console-producer (the Maven jars), keyed "key|value" lines."""
    done = run_outbid(
        *("kafka", "kafka-console-producer", "--bootstrap-server", line.bootstrap),
        *("--topic", line.topic("bid-commands")),
        *("--property", "parse.key=true", "--property", "key.separator=|", *args),
        env=line.env,
        input=payload.decode(),
        timeout=180,
    )
    assert done.returncode == 0, done.stderr


def send(
    line: Pipeline, producer: Producer, commands: list[Command], headers: Headers | None = None
) -> None:
    """confluent-kafka (librdkafka, like kcat), keyed by auction id; waits for every ack."""
    for command in commands:
        producer.produce(
            line.topic("bid-commands"),
            key=command.auction_id.encode(),
            value=encode_command(command),
            headers=headers or [],
        )
    assert producer.flush(30) == 0


def keyed(commands: list[Command]) -> bytes:
    return b"".join(c.auction_id.encode() + b"|" + encode_command(c) + b"\n" for c in commands)


def auction(auction_id: str, *amounts: int) -> list[Command]:
    now = datetime.now(UTC)
    opened = OpenAuction(
        command_id=f"{auction_id}-open",
        issued_at=now,
        auction_id=auction_id,
        seller_id="seller",
        starting_price=100,
        min_increment=10,
        currency="EUR",
        closes_at=now + timedelta(hours=1),
    )
    return [opened, *(bid(auction_id, a, f"bidder-{n}") for n, a in enumerate(amounts, 1))]


def bid(auction_id: str, amount: int, bidder: str) -> PlaceBid:
    return PlaceBid(
        command_id=f"{auction_id}-{bidder}-{amount}",
        issued_at=datetime.now(UTC),
        auction_id=auction_id,
        bidder_id=bidder,
        amount=amount,
        currency="EUR",
    )


# --- reading back -----------------------------------------------------------------------------


def end_offsets(line: Pipeline) -> dict[int, int]:
    probe = Consumer({"bootstrap.servers": line.bootstrap, "group.id": f"{line.prefix}ends"})
    try:
        return {
            p: probe.get_watermark_offsets(
                TopicPartition(line.topic("bid-commands"), p), timeout=10, cached=False
            )[1]
            for p in range(PARTITIONS)
        }
    finally:
        probe.close()


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def stored_batches(line: Pipeline, ends: dict[int, int]) -> list[Batch]:
    """Every record batch of bid-commands below `ends`, with the codec it is stored in.

    librdkafka logs the codec of each fetch it decodes (debug "msg"); a fetch limit of one byte
    makes each fetch exactly one batch (KIP-74: the first batch is returned whatever its size).
    """
    topic = line.topic("bid-commands")
    handler = _Lines()
    log = logging.getLogger(f"librdkafka.codecs.{uuid.uuid4().hex}")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    reader = Consumer(
        {
            "bootstrap.servers": line.bootstrap,
            "group.id": f"{line.prefix}codecs",
            "enable.auto.commit": False,
            "debug": "msg",
            "logger": log,
            "max.partition.fetch.bytes": 1,
            "fetch.max.bytes": 1024,
            "message.max.bytes": 1024,  # fetch.max.bytes may not be below it
        }
    )
    wanted = [TopicPartition(topic, p) for p, end in ends.items() if end > 0]
    reader.assign([TopicPartition(topic, tp.partition, 0) for tp in wanted])
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            reader.consume(500, 0.2)
            positions = {tp.partition: tp.offset for tp in reader.position(wanted)}
            if all(positions[p] >= ends[p] for p in positions):
                break
        else:
            pytest.fail(f"bid-commands not read to {ends} in 60 s")
        reader.poll(0.1)  # serves the last log lines
    finally:
        reader.close()
    batches = []
    for text in handler.lines:
        found = FETCHED.search(text)
        if found and found["topic"] == topic:
            batches.append(Batch(int(found["partition"]), int(found["last"]), found["codec"]))
    return batches


def decided(line: Pipeline) -> set[str]:
    """The command id of every event in auction-events."""
    records = read_all(line.bootstrap, line.topic("auction-events"))
    return {decode_event(value).command_id for _, value, *_ in records if value is not None}


def commands_read(line: Pipeline, keys: set[bytes]) -> dict[bytes, list[dict[str, bytes]]]:
    """The headers of each record under `keys`, read by the auditor's reader."""
    reader, topic = TopicReader({"bootstrap.servers": line.bootstrap}), line.topic("bid-commands")
    found: dict[bytes, list[dict[str, bytes]]] = {}
    try:
        for p in reader.partitions(topic):
            for record in reader.read(topic, p, reader.end_offset(topic, p)):
                if record.key in keys:
                    found.setdefault(record.key, []).append(record.headers)
    finally:
        reader.close()
    return found


def dead_letters(
    line: Pipeline, key: bytes
) -> list[tuple[bytes | None, bytes | None, dict[str, bytes]]]:
    return [
        (k, v, dict(headers))
        for k, v, headers, *_ in read_all(line.bootstrap, line.topic("bid-commands-dlq"))
        if k == key
    ]
