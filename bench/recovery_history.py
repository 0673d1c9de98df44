"""A long history, written fast: what the engine would have written for H decided commands;
and the history read back, folded from the event log alone (what recovery saves us from).

The commands are decided by the real domain (`decide`/`evolve`/`apply`, and the bid rate of
agents/bid_rate.py) in this process and written with confluent-kafka as a worker writes them:
the command to bid-commands, its events to auction-events, and the new values of the three
tables (tables/partition.py's TABLES) to their changelogs, all keyed by the auction id (murmur2,
so the partitions match). The engine writes each changed auction's values once per transaction;
this writes them once per command, which is what the engine writes under light load and the most
a recovery can have to replay. The workers' group then commits bid-commands' end offsets, as if a
worker had processed it all. This takes seconds per 100k commands where a worker needs tens of
seconds; the recovery benchmark measures recovering this state, not producing it (`outbid verify`
can audit it).
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from agents.bid_rate import BidRate
from agents.bid_rate import count as count_bids
from app.domain import (
    AuctionState,
    Command,
    HighestBid,
    OpenAuction,
    PlaceBid,
    apply,
    decide,
    decode_event,
    encode_command,
    encode_event,
    evolve,
)
from app.errors import KafkaUnavailableError
from app.kafka_config import KafkaConfig
from app.producers import command_producer
from app.settings import Settings
from app.topics.admin import admin_client
from app.topics.partitioner import partition_for
from app.topics.spec import COMMANDS, EVENTS
from tables.auctions import AUCTIONS
from tables.bid_rate import BID_RATE
from tables.highest_bids import HIGHEST_BIDS

Tick = Callable[[int], None]
Record = tuple[bytes, bytes]
GROUP_EMPTY_TIMEOUT_S = 120.0
COORDINATOR_SETTLING = (
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
)


class History:
    """Grows one history over `auctions` auctions; remembers the expected state of each."""

    def __init__(self, settings: Settings, auctions: int, seed: int = 7) -> None:
        self.settings = settings
        self.rng = random.Random(seed)
        self.ids = [f"R-{i}" for i in range(auctions)]
        self.states: dict[str, AuctionState] = {}
        self.views: dict[str, HighestBid] = {}
        self.rates: dict[str, BidRate] = {}
        self.events = 0
        self.commands = 0
        self.now = datetime.now(UTC)
        self.producer: Producer = command_producer(
            settings.kafka_client_config(),
            **{
                "linger.ms": 50,
                "batch.size": 1_000_000,
                "queue.buffering.max.messages": 1_000_000,
                "queue.buffering.max.kbytes": 1_048_576,
            },
        )
        self.commands_topic = settings.topic(COMMANDS)
        self.events_topic = settings.topic(EVENTS)

    def grow(self, events: int, tick: Tick | None = None) -> None:
        """Decide commands until the event log holds `events` more decision events."""
        target = self.events + events
        pending = 0
        while self.events < target:
            before = self.events
            self._write(self._next_command())
            pending += self.events - before
            if pending >= 5_000:
                self.producer.poll(0)
                if tick:
                    tick(pending)
                pending = 0
        self.producer.flush(120)
        if tick and pending:
            tick(pending)

    def bids_for_every_partition(self, partitions: int) -> list[Record]:
        """One accepted bid on an auction of each partition, decided here (the expected states
        follow) but returned as command records for a worker to process: every table partition
        then has a write, which is what makes a worker take its snapshot."""
        chosen: dict[int, str] = {}
        for aid in self.ids:
            if aid in self.states:
                chosen.setdefault(partition_for(aid.encode(), partitions), aid)
        records = []
        for aid in chosen.values():
            command = self._bid(aid, too_low=False)
            self._decide(command)
            records.append((aid.encode(), encode_command(command)))
        return records

    def _next_command(self) -> Command:
        unopened = len(self.states) < len(self.ids)
        if unopened:
            self.commands += 1
            aid = self.ids[len(self.states)]
            return OpenAuction(
                command_id=f"{aid}-open",
                issued_at=self.now,
                auction_id=aid,
                seller_id=f"seller-{self.commands % 97}",
                starting_price=1000,
                min_increment=10,
                currency="EUR",
                closes_at=self.now + timedelta(days=30),
            )
        return self._bid(self.rng.choice(self.ids), too_low=self.rng.random() < 0.1)

    def _bid(self, aid: str, *, too_low: bool) -> PlaceBid:
        self.commands += 1
        highest = self.states[aid].highest_bid or 1000
        return PlaceBid(
            command_id=f"{aid}-bid-{self.commands}",
            issued_at=self.now,
            auction_id=aid,
            bidder_id=f"bidder-{self.rng.randrange(5_000)}",
            amount=highest - 5 if too_low else highest + 10 * self.rng.randint(1, 5),
            currency="EUR",
        )

    def _decide(self, command: Command) -> list[bytes]:
        """Decide `command` into the expected state; returns its encoded events."""
        aid = command.auction_id
        state = self.states.get(aid) or AuctionState.empty(aid)
        max_recent = self.settings.recent_commands
        events = decide(state, command, self.now, max_recent=max_recent)
        for event in events:
            state = evolve(state, event, max_recent=max_recent)
            self.views[aid] = apply(self.views.get(aid), event)
        rate = count_bids(self.rates.get(aid), events)
        if rate is not None:
            self.rates[aid] = rate
        self.states[aid] = state
        self.events += len(events)
        return [encode_event(event) for event in events]

    def _write(self, command: Command) -> None:
        """Decide `command` and write all a worker would: command, events, table changelogs."""
        aid = command.auction_id
        key = aid.encode()
        self._send(self.commands_topic, key, encode_command(command))
        for event in self._decide(command):
            self._send(self.events_topic, key, event)
        topic = self.settings.topic
        self._send(topic(AUCTIONS.changelog), key, AUCTIONS.encode(self.states[aid]))
        if aid in self.views:
            self._send(topic(HIGHEST_BIDS.changelog), key, HIGHEST_BIDS.encode(self.views[aid]))
        if aid in self.rates:
            self._send(topic(BID_RATE.changelog), key, BID_RATE.encode(self.rates[aid]))

    def _send(self, topic: str, key: bytes, value: bytes) -> None:
        while True:
            try:
                self.producer.produce(topic, key=key, value=value)
            except BufferError:
                self.producer.poll(0.05)  # the local queue is full: let it drain
            else:
                return

    def commit_as_processed(self) -> None:
        """Commit the workers' group's bid-commands offsets at the end: the history counts as
        processed. A group's offsets can be set from outside only while it has no member, and a
        stopped worker stays a member (static membership) until its session times out."""
        wait_until_group_empty(self.settings.kafka_client_config(), self.settings.group_id)
        consumer = Consumer(
            {
                **self.settings.kafka_client_config(),
                "group.id": self.settings.group_id,
                "enable.auto.commit": False,
                "logger": logging.getLogger("librdkafka"),
            }
        )
        try:
            topic = self.commands_topic
            offsets = []
            for p in consumer.list_topics(topic, timeout=15).topics[topic].partitions:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=15)
                offsets.append(TopicPartition(topic, p, high))
            for attempt in range(60):  # a fresh broker loads its group coordinator for a while
                try:
                    consumer.commit(offsets=offsets, asynchronous=False)
                    break
                except KafkaException as exc:
                    if not exc.args[0].retriable() or attempt == 59:
                        raise
                    time.sleep(1)
        finally:
            consumer.close()

    def sample(self, count: int) -> dict[str, tuple[int, int | None]]:
        """(seq, highest bid) a correct worker must answer for `count` auctions."""
        ids = self.rng.sample(self.ids, min(count, len(self.ids)))
        return self.expected(ids)

    def expected(self, ids: list[str]) -> dict[str, tuple[int, int | None]]:
        return {aid: (self.states[aid].version, self.states[aid].highest_bid) for aid in ids}


def wait_until_group_empty(
    kafka: KafkaConfig, group: str, timeout_s: float = GROUP_EMPTY_TIMEOUT_S
) -> None:
    admin = admin_client(kafka)  # its librdkafka logs go through logging, as the CLI sets
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            description = admin.describe_consumer_groups([group])[group].result(timeout=15)
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() == KafkaError.GROUP_ID_NOT_FOUND:
                return
            settling = error.retriable() or error.code() in COORDINATOR_SETTLING
            if not settling or time.monotonic() > deadline:
                raise
            time.sleep(0.5)  # a fresh broker is still loading the group's coordinator
            continue
        if not description.members:
            return
        if time.monotonic() > deadline:
            raise KafkaUnavailableError(
                f"consumer group {group} still has {len(description.members)} member(s) after "
                f"{timeout_s:.0f}s: is a worker of this benchmark still running?"
            )
        time.sleep(0.5)


def fold_event_log(settings: Settings) -> tuple[dict[str, AuctionState], dict[str, HighestBid]]:
    topic = settings.topic(EVENTS)
    consumer = Consumer(
        {
            **settings.kafka_client_config(),
            "group.id": f"bench-replay-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "logger": logging.getLogger("librdkafka"),
        }
    )
    states: dict[str, AuctionState] = {}
    views: dict[str, HighestBid] = {}
    max_recent = settings.recent_commands
    try:
        partitions = consumer.list_topics(topic, timeout=15).topics[topic].partitions
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=15)[1]
            for p in partitions
        }
        remaining = [TopicPartition(topic, p, 0) for p, end in ends.items() if end > 0]
        consumer.assign(remaining)
        while remaining:
            for msg in consumer.consume(10_000, 1.0):
                value = msg.value()
                if msg.error() or value is None:
                    continue
                event = decode_event(value)
                aid = event.auction_id
                states[aid] = evolve(
                    states.get(aid) or AuctionState.empty(aid), event, max_recent=max_recent
                )
                views[aid] = apply(views.get(aid), event)
            # The position, not the last record's offset: a partition written by a worker ends
            # with a transaction marker, which is never delivered.
            remaining = [
                tp for tp in consumer.position(remaining) if tp.offset < ends[tp.partition]
            ]
    finally:
        consumer.close()
    return states, views
