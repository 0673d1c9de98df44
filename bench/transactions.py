"""`outbid bench transactions`: what one engine-shaped Kafka transaction costs, by the partitions
it writes, with the broker's partition verification on and off.

At a steady 3,000 commands/s the engine's loop spends most of each turn in the commit, and the
commit's time is the produce round trip of the records still in flight, then EndTxn. This bench
takes the engine out and keeps the transaction: the engine's producer settings
(`app/engine/kafka.py`), the engine's topics, a small batch of records per partition, the input
offsets sent with a consumer group's metadata, then commit_transaction(). Two shapes:

- `events`: every partition of auction-events (what the event log alone costs);
- `events+changelogs`: those and every partition of the three table changelogs, which is what
  the engine's transactions write once a worker owns every partition.

librdkafka sends one ProduceRequest per partition (confluentinc/librdkafka#1700), the broker
serves one request per connection at a time, and since Kafka 3.6 it checks the first
transactional write to each partition with the transaction coordinator
(`transaction.partition.verification.enable`, KIP-890 part 1): so the cost grows with the
partitions a transaction writes. `--verification on,off` (the default) measures both: off
changes the brokers' setting for the run and puts it back after. On servers the bench did not
start (KAFKA_BOOTSTRAP_SERVERS set) it measures only "on" unless --verification is given. Off
is an experiment: it shows what the check costs, not a setting to run with (it guards against
hanging transactions).
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import click
import orjson
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from pydantic import SecretStr
from rich.console import Console
from rich.progress import track
from rich.table import Table

from app.engine.kafka import PRODUCER_BATCHING
from app.errors import OutbidError
from app.settings import Settings, get_settings
from app.topics.spec import (
    AUCTIONS_CHANGELOG,
    BID_RATE_CHANGELOG,
    COMMANDS,
    EVENTS,
    HIGHEST_BIDS_CHANGELOG,
)
from bench import throughput_stack as stack
from bench.verification import Cluster

SHAPES: dict[str, tuple[str, ...]] = {
    "events": (EVENTS,),
    "events+changelogs": (EVENTS, AUCTIONS_CHANGELOG, HIGHEST_BIDS_CHANGELOG, BID_RATE_CHANGELOG),
}
STAGES = ("produce", "offsets", "flush", "end_txn", "total")
EVENT = b"x" * 250  # about a BidAccepted
CHANGELOG_VALUE = b"y" * 150  # about a table value


class TransactionsBenchError(OutbidError):
    """The transactions benchmark could not measure."""


@dataclass(frozen=True, slots=True)
class Variant:
    shape: str
    verification: str  # "on" or "off"
    repeat: int
    partitions: int  # written by each transaction
    broker_setting: list[str]  # the verification setting each broker reported for this run
    transactions: int
    ms: dict[str, dict[str, float]]  # stage -> {"p50", "p90"}


@dataclass
class Report:
    benchmark: str = "transactions"
    source: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    # "shape/verification" -> stage -> median over the repeats of each run's p50 (ms)
    medians: dict[str, dict[str, float]] = field(default_factory=dict)
    # verification -> (flush with the changelogs - flush without) / the extra partitions (ms)
    flush_ms_per_partition: dict[str, float] = field(default_factory=dict)
    runs: list[Variant] = field(default_factory=list)


def _quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 3),
        "p90": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))], 3),
    }


class Loop:
    """The engine's transaction without the engine: produce, offsets, flush, commit."""

    def __init__(self, settings: Settings, partitions: int, records: int) -> None:
        self.settings, self.partitions, self.records = settings, partitions, records
        config = settings.kafka_client_config()
        self.producer = Producer(
            {
                **config,
                "transactional.id": f"bench-transactions-{uuid.uuid4().hex[:8]}",
                "socket.nagle.disable": True,
                **PRODUCER_BATCHING,
            }
        )
        self.producer.init_transactions(30)
        self.consumer = Consumer(
            {**config, "group.id": settings.group_id, "enable.auto.commit": False}
        )
        self.commands = settings.topic(COMMANDS)
        self.consumer.subscribe([self.commands])
        deadline = time.monotonic() + 60
        while not self.consumer.assignment():  # the group's metadata carries a generation
            if time.monotonic() > deadline:
                raise TransactionsBenchError("the bench's consumer got no partition in 60 s")
            self.consumer.poll(0.1)
        self.offset = 0

    def run(self, topics: tuple[str, ...], count: int, pause_s: float) -> dict[str, list[float]]:
        names = [self.settings.topic(t) for t in topics]
        taken: dict[str, list[float]] = {stage: [] for stage in STAGES}
        produce = self.producer.produce
        for _ in range(count):
            started = time.perf_counter()
            self.producer.begin_transaction()
            for name in names:
                value = EVENT if name == names[0] else CHANGELOG_VALUE
                for n in range(self.records * self.partitions):
                    produce(name, value, key=b"k%d" % n, partition=n % self.partitions)
            produced = time.perf_counter()
            self.offset += 1
            offsets = [
                TopicPartition(self.commands, p, self.offset) for p in range(self.partitions)
            ]
            self.producer.send_offsets_to_transaction(
                offsets, self.consumer.consumer_group_metadata(), 30
            )
            offsets_sent = time.perf_counter()
            left = self.producer.flush(30)
            if left:
                raise TransactionsBenchError(f"{left} record(s) not delivered within 30 s")
            flushed = time.perf_counter()
            self.producer.commit_transaction(30)
            ended = time.perf_counter()
            taken["produce"].append((produced - started) * 1000)
            taken["offsets"].append((offsets_sent - produced) * 1000)
            taken["flush"].append((flushed - offsets_sent) * 1000)
            taken["end_txn"].append((ended - flushed) * 1000)
            taken["total"].append((ended - started) * 1000)
            time.sleep(pause_s)  # the engine's next batch arrives meanwhile
        return taken

    def close(self) -> None:
        self.consumer.close()
        self.producer.flush(10)


@contextmanager
def _servers_and_settings(root: Path) -> Iterator[tuple[stack.Servers, Settings, int]]:
    base = get_settings()
    with stack.servers(root, base.kafka_heap) as found:
        settings = base.model_copy(
            update={
                "kafka_bootstrap_servers": found.kafka,
                "redis_url": SecretStr(found.redis),
                "topic_prefix": f"{base.topic_prefix}tx{uuid.uuid4().hex[:6]}.",  # and the group
            }
        )
        partitions = stack.create_topics(settings)
        try:
            yield found, settings, partitions
        finally:
            if not found.private:
                stack.delete_topics(settings)


@click.command()
@click.option("--transactions", default=300, show_default=True, type=click.IntRange(5, 100_000))
@click.option("--repeats", default=3, show_default=True, type=click.IntRange(1, 20))
@click.option(
    "--records",
    default=4,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="Records per partition per topic in each transaction (3,000/s in 25 ms turns over 8 "
    "partitions is about 10 commands per partition, fewer changed auctions).",
)
@click.option(
    "--pause-ms",
    default=15.0,
    show_default=True,
    type=click.FloatRange(0, 10_000),
    help="Between two transactions, as the engine handles its next batch.",
)
@click.option(
    "--verification",
    default="on,off",
    show_default=True,
    help="The brokers' partition verification to measure with: on, off or both (off changes "
    "the brokers' setting for the run and restores it; on servers the bench did not start, only "
    "when this option is given).",
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path))
def transactions_command(
    transactions: int,
    repeats: int,
    records: int,
    pause_ms: float,
    verification: str,
    json_path: Path | None,
) -> None:
    """The cost of one engine-shaped transaction, by partitions written and verification."""
    chosen = [v.strip() for v in verification.split(",") if v.strip()]
    if not chosen or set(chosen) - {"on", "off"}:
        raise click.BadParameter("give on, off or on,off", param_hint="--verification")
    plan = Plan(transactions, repeats, records, pause_ms, chosen)
    console = Console(stderr=True)
    report = Report(source=stack.source_revision(), machine=stack.machine_info())
    try:
        _run(report, plan, console)
    except KafkaException as exc:
        raise TransactionsBenchError(f"Kafka failed during the benchmark: {exc.args[0]}") from exc
    _summarize(report, report.config["verification"])
    _print(report, console)
    if json_path is not None:
        json_path.write_bytes(orjson.dumps(asdict(report), option=orjson.OPT_INDENT_2))


@dataclass(frozen=True, slots=True)
class Plan:
    """What the command line asked for."""

    transactions: int
    repeats: int
    records: int  # per partition per topic in each transaction
    pause_ms: float
    verification: list[str]  # "on", "off"


def _run(report: Report, plan: Plan, console: Console) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="outbid-bench-transactions-") as scratch,
        _servers_and_settings(Path(scratch)) as (found, settings, partitions),
    ):
        if not found.private and "off" in plan.verification and not _given("verification"):
            # servers someone else runs: their brokers' setting changes only when asked for
            plan = replace(plan, verification=["on"])
            console.print(
                "The brokers' partition verification is left as it is on servers this bench did "
                "not start: pass --verification on,off to turn it off for the run (it is put "
                "back after)."
            )
        report.runs = _measure(settings, partitions, plan, console)
        report.config = {
            "transactions": plan.transactions,
            "repeats": plan.repeats,
            "records_per_partition": plan.records,
            "pause_ms": plan.pause_ms,
            "verification": plan.verification,
            "partitions_per_topic": partitions,
            "producer": PRODUCER_BATCHING,
            "private_broker": found.private,
        }


def _given(option: str) -> bool:
    """Whether the user passed `option` (not its default)."""
    source = click.get_current_context().get_parameter_source(option)
    return source is not None and source is not click.core.ParameterSource.DEFAULT


def _measure(settings: Settings, partitions: int, plan: Plan, console: Console) -> list[Variant]:
    """Every variant, alternated; the Kafka clients are gone when it returns (before the stack
    stops: a live client would keep reconnecting to a stopped broker, and say so)."""
    cluster = Cluster(AdminClient(settings.kafka_client_config()))
    cluster.read()
    loop = Loop(settings, partitions, plan.records)
    pause_s = plan.pause_ms / 1000
    steps = [(r, v, s) for r in range(plan.repeats) for v in plan.verification for s in SHAPES]
    runs: list[Variant] = []
    try:
        loop.run(SHAPES["events+changelogs"], min(50, plan.transactions), pause_s)  # warm-up
        for repeat, setting, shape in track(steps, "variants", console=console):
            cluster.set("true" if setting == "on" else "false")
            setting_now = cluster.effective()
            taken = loop.run(SHAPES[shape], plan.transactions, pause_s)
            runs.append(
                Variant(
                    shape=shape,
                    verification=setting,
                    repeat=repeat,
                    partitions=partitions * len(SHAPES[shape]),
                    broker_setting=setting_now,
                    transactions=plan.transactions,
                    ms={stage: _quantiles(values) for stage, values in taken.items()},
                )
            )
    finally:
        loop.close()
        cluster.restore()
    return runs


def _summarize(report: Report, chosen: list[str]) -> None:
    for setting in chosen:
        for shape in SHAPES:
            runs = [r for r in report.runs if r.shape == shape and r.verification == setting]
            report.medians[f"{shape}/{setting}"] = {
                stage: round(statistics.median(r.ms[stage]["p50"] for r in runs), 3)
                for stage in STAGES
            }
        small = report.medians[f"events/{setting}"]
        large = report.medians[f"events+changelogs/{setting}"]
        extra = (len(SHAPES["events+changelogs"]) - 1) * report.config["partitions_per_topic"]
        report.flush_ms_per_partition[setting] = round((large["flush"] - small["flush"]) / extra, 3)


def _print(report: Report, console: Console) -> None:
    table = Table(title="one engine-shaped transaction (median of the repeats' p50, ms)")
    table.add_column("shape / verification")
    table.add_column("partitions", justify="right")
    for stage in STAGES:
        table.add_column(stage, justify="right")
    for key, stages in report.medians.items():
        shape = key.split("/")[0]
        written = len(SHAPES[shape]) * report.config["partitions_per_topic"]
        table.add_row(key, str(written), *(f"{stages[s]:.2f}" for s in STAGES))
    Console().print(table)
    for setting, cost in report.flush_ms_per_partition.items():
        console.print(f"flush per extra partition written, verification {setting}: {cost:.3f} ms")
