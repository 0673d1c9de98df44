"""A long history, written fast: what the pipeline would have written for H decided commands.

The commands are decided by the real domain (`decide`/`evolve`/`apply`) in this process and
written with confluent-kafka exactly as a worker writes them: the command to bid-commands, its
events to auction-events, the new aggregate to the `auctions` changelog and the new view to the
`highest_bids` changelog, all keyed by the auction id (murmur2, so the partitions match). The
consumer group's offsets are then committed at the end, as if the worker had processed it all.
This takes seconds per 100k commands where the pipeline itself needs minutes; the recovery
benchmark measures recovering this state, not producing it (`outbid verify` can audit it).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from app.domain import (
    AuctionState,
    Command,
    HighestBid,
    OpenAuction,
    PlaceBid,
    apply,
    decide,
    encode_command,
    encode_event,
    encode_state,
    encode_view,
    evolve,
)
from app.producers import command_producer
from app.settings import Settings
from app.topics.spec import AUCTIONS_CHANGELOG, COMMANDS, EVENTS, HIGHEST_BIDS_CHANGELOG

Tick = Callable[[int], None]


class History:
    """Grows one history over `auctions` auctions; remembers the expected state of each."""

    def __init__(self, settings: Settings, auctions: int, seed: int = 7) -> None:
        self.settings = settings
        self.rng = random.Random(seed)
        self.ids = [f"R-{i}" for i in range(auctions)]
        self.states: dict[str, AuctionState] = {}
        self.views: dict[str, HighestBid] = {}
        self.events = 0
        self.commands = 0
        self.now = datetime.now(UTC)
        self.producer: Producer = command_producer(
            settings.kafka_bootstrap_servers,
            **{
                "linger.ms": 50,
                "batch.size": 1_000_000,
                "queue.buffering.max.messages": 1_000_000,
                "queue.buffering.max.kbytes": 1_048_576,
            },
        )
        topic = settings.topic
        self.topics = (topic(COMMANDS), topic(EVENTS), topic(AUCTIONS_CHANGELOG))
        self.views_changelog = topic(HIGHEST_BIDS_CHANGELOG)

    def grow(self, events: int, tick: Tick | None = None) -> None:
        """Decide commands until the event log holds `events` more decision events."""
        target = self.events + events
        pending = 0
        while self.events < target:
            before = self.events
            self._decide(self._next_command())
            pending += self.events - before
            if pending >= 5_000:
                self.producer.poll(0)
                if tick:
                    tick(pending)
                pending = 0
        self.producer.flush(120)
        if tick and pending:
            tick(pending)

    def _next_command(self) -> Command:
        self.commands += 1
        unopened = len(self.states) < len(self.ids)
        aid = self.ids[len(self.states)] if unopened else self.rng.choice(self.ids)
        if unopened:
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
        highest = self.states[aid].highest_bid or 1000
        too_low = self.rng.random() < 0.1
        return PlaceBid(
            command_id=f"{aid}-bid-{self.commands}",
            issued_at=self.now,
            auction_id=aid,
            bidder_id=f"bidder-{self.rng.randrange(5_000)}",
            amount=highest - 5 if too_low else highest + 10 * self.rng.randint(1, 5),
            currency="EUR",
        )

    def _decide(self, command: Command) -> None:
        commands, events, aggregates = self.topics
        aid = command.auction_id
        key = aid.encode()
        state = self.states.get(aid) or AuctionState.empty(aid)
        self._send(commands, key, encode_command(command))
        max_recent = self.settings.recent_commands
        for event in decide(state, command, self.now, max_recent=max_recent):
            state = evolve(state, event, max_recent=max_recent)
            view = apply(self.views.get(aid), event)
            self.views[aid] = view
            self._send(events, key, encode_event(event))
            self._send(self.views_changelog, key, encode_view(view))
            self.events += 1
        self.states[aid] = state
        self._send(aggregates, key, encode_state(state))

    def _send(self, topic: str, key: bytes, value: bytes) -> None:
        while True:
            try:
                self.producer.produce(topic, key=key, value=value)
            except BufferError:
                self.producer.poll(0.05)  # the local queue is full: let it drain
            else:
                return

    def commit_as_processed(self) -> None:
        """Commit the worker group's offsets at the end: the history counts as processed."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.kafka_bootstrap_servers,
                "group.id": self.settings.group_id,
                "enable.auto.commit": False,
            }
        )
        try:
            offsets = []
            for topic in self.topics[:2]:
                metadata = consumer.list_topics(topic, timeout=15).topics[topic]
                for p in metadata.partitions:
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
        return {aid: (self.states[aid].version, self.states[aid].highest_bid) for aid in ids}
