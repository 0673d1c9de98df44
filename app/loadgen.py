"""A load generator: auctions open, receive skewed bids, some close; with duplicates and garbage.

Produces with confluent-kafka (murmur2 partitioner, idempotent) at a target rate or as fast as
possible, and reports exactly what it sent, so a run can be audited afterwards.
"""

from __future__ import annotations

import random
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from app.domain import CloseAuction, Command, OpenAuction, PlaceBid, encode_command
from app.errors import KafkaUnavailableError
from app.kafka_config import KafkaConfig, bootstrap_of
from app.producers import command_producer

GARBAGE = (
    b"not json at all",
    b'{"type":"PlaceBid"}',
    b'{"type":"Teleport","auction_id":"X-1","command_id":"g","issued_at":"2026-01-01T00:00:00Z"}',
    b"\xff\xfe\x00 not utf-8",
    b'{"type":"PlaceBid","command_id":"g2","issued_at":"2026-01-01T00:00:00Z","auction_id":"A-1",'
    b'"bidder_id":"b","amount":-1,"currency":"EUR"}',
    b"[1, 2, 3]",
)


@dataclass(frozen=True, slots=True)
class LoadSpec:
    commands: int = 10_000
    rate: float = 0.0  # commands per second; 0 = as fast as possible
    auctions: int = 1_000
    bidders: int = 500
    skew: float = 1.1  # Zipf exponent of auction popularity (0 = uniform)
    duplicates: float = 0.01  # share of commands that re-send an earlier command_id
    garbage: float = 0.01  # share of records that are not valid commands
    close_share: float = 0.2  # share of auctions closed at the end
    seed: int = 1
    run_id: str = "L"


@dataclass
class LoadReport:
    sent: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.sent.values())

    def as_json(self) -> dict[str, object]:
        return {
            "sent": dict(self.sent),
            "total": self.total,
            "seconds": round(self.seconds, 3),
            "rate": round(self.total / self.seconds, 1) if self.seconds else 0.0,
        }


class _Zipf:
    def __init__(self, n: int, s: float, rng: random.Random) -> None:
        weights = [1 / (i + 1) ** s for i in range(n)]
        total = sum(weights)
        self.cum: list[float] = []
        acc = 0.0
        for w in weights:
            acc += w / total
            self.cum.append(acc)
        self.rng = rng

    def sample(self) -> int:
        import bisect  # noqa: PLC0415

        return min(bisect.bisect_left(self.cum, self.rng.random()), len(self.cum) - 1)


def generate(
    spec: LoadSpec,
    produce: Callable[[bytes | None, bytes], None],
    tick: Callable[[int], None] | None = None,
) -> LoadReport:
    rng = random.Random(spec.seed)  # noqa: S311 - reproducible load, not security
    now = datetime.now(UTC)
    report = LoadReport()
    ids = [f"{spec.run_id}-{i}" for i in range(spec.auctions)]
    sellers = {aid: f"seller-{i % 97}" for i, aid in enumerate(ids)}
    prices = dict.fromkeys(ids, 1000)
    recent: deque[Command] = deque(maxlen=64)
    popularity = _Zipf(spec.auctions, spec.skew, rng)
    started = time.perf_counter()
    seq = 0

    def send(key: bytes | None, value: bytes, kind: str) -> None:
        nonlocal seq
        if spec.rate > 0:
            due = started + seq / spec.rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        produce(key, value)
        report.sent[kind] += 1
        seq += 1
        if tick and seq % 500 == 0:
            tick(500)

    for aid in ids[: spec.commands]:
        cmd: Command = OpenAuction(
            command_id=f"{aid}-open",
            issued_at=now,
            auction_id=aid,
            seller_id=sellers[aid],
            starting_price=1000,
            min_increment=50,
            currency="EUR",
            closes_at=now + timedelta(hours=6),
        )
        send(aid.encode(), encode_command(cmd), "open")
    closes = int(spec.auctions * spec.close_share)
    bids = max(0, spec.commands - report.total - closes)
    for n in range(bids):
        roll = rng.random()
        if roll < spec.garbage:
            send(rng.choice([None, ids[0].encode()]), rng.choice(GARBAGE), "garbage")
            continue
        if roll < spec.garbage + spec.duplicates and recent:
            dup = rng.choice(recent)
            send(dup.auction_id.encode(), encode_command(dup), "duplicate")
            continue
        aid = ids[popularity.sample()]
        bidder = f"bidder-{rng.randrange(spec.bidders)}"
        too_low = rng.random() < 0.2
        amount = prices[aid] - 10 if too_low else prices[aid] + 50 * rng.randint(1, 4)
        prices[aid] = max(prices[aid], amount)
        cmd = PlaceBid(
            command_id=f"{spec.run_id}-bid-{n}",
            issued_at=datetime.now(UTC),
            auction_id=aid,
            bidder_id=bidder,
            amount=amount,
            currency="EUR",
        )
        recent.append(cmd)
        send(aid.encode(), encode_command(cmd), "bid")
    for aid in ids[:closes]:
        cmd = CloseAuction(command_id=f"{aid}-close", issued_at=datetime.now(UTC), auction_id=aid)
        send(aid.encode(), encode_command(cmd), "close")
    report.seconds = time.perf_counter() - started
    return report


def run(
    spec: LoadSpec, kafka: KafkaConfig, topic: str, tick: Callable[[int], None] | None = None
) -> LoadReport:
    producer = command_producer(
        kafka,
        **{"linger.ms": 5, "batch.num.messages": 10_000, "queue.buffering.max.messages": 500_000},
    )
    failures: list[str] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    def produce(key: bytes | None, value: bytes) -> None:
        while True:
            try:
                producer.produce(topic, key=key, value=value, on_delivery=delivered)
                break
            except BufferError:  # local queue full: let it drain
                producer.poll(0.05)
        producer.poll(0)

    report = generate(spec, produce, tick)
    left = producer.flush(60)
    if left or failures:
        raise KafkaUnavailableError(
            f"{left} command(s) unsent and {len(failures)} failed ({failures[:1]}) at {bootstrap_of(kafka)}"
        )
    return report
