"""bench/profile_stacks.py: py-spy's raw stacks of a worker, grouped by what the engine spent them on."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import REPO_ROOT
from bench import profile_stacks as stacks
from bench.profile_stacks import KafkaCalls, Profile

# A stand-in for app/engine/loop.py: the line numbers below are this text's.
LOOP = """\
class Engine:
    def run(self):
        batch = self.consumer.consume(2000, 0.1)
        self._handle(batch)

    def _commit(self, offsets):
        self.producer.send_offsets_to_transaction(
            offsets, self.consumer.consumer_group_metadata(), 60
        )
        self.producer.commit_transaction(60)

    def _write(self, records):
        produce = self.producer.produce
        for key, value in records:
            produce("topic", key=key, value=value)
        self.other.produce("not a client of the engine")
"""
RUN = "Engine.run (app/engine/loop.py:4)"
ENGINE = "thread (29635): outbid-engine;Thread.run (threading.py:982)"


@pytest.fixture
def kafka(tmp_path: Path) -> KafkaCalls:
    (tmp_path / "app" / "engine").mkdir(parents=True)
    (tmp_path / "app" / "engine" / "loop.py").write_text(LOOP)
    return KafkaCalls(tmp_path)


def engine(*frames: str, count: int = 1) -> str:
    return ";".join([ENGINE, *frames]) + f" {count}"


def step(*frames: str) -> tuple[str, ...]:
    return (RUN, "CommandStep.__call__ (agents/step.py:97)", *frames)


def commit(*frames: str) -> tuple[str, ...]:
    return ("Engine.run (app/engine/loop.py:4)", *frames)


def test_client_calls_know_every_line_of_a_call_and_the_aliases() -> None:
    assert stacks.client_calls(LOOP) == {
        3: "consume",
        7: "send_offsets_to_transaction",
        8: "send_offsets_to_transaction",  # the argument's own call is part of the outer one
        9: "send_offsets_to_transaction",
        10: "commit_transaction",
        15: "produce",  # `produce = self.producer.produce`
    }


@pytest.mark.parametrize(
    ("frames", "category"),
    [
        # a Kafka call is told by the line of the engine's frame that made it
        ((RUN,), stacks.LOOP),
        (("Engine.run (app/engine/loop.py:3)",), "Kafka: consume()"),
        (("Engine._commit (app/engine/loop.py:8)",), "Kafka: send_offsets_to_transaction()"),
        (("Engine._commit (app/engine/loop.py:10)",), "Kafka: commit_transaction()"),
        (("Engine._write (app/engine/loop.py:15)",), "Kafka: produce()"),
        (("Engine._write (app/engine/loop.py:16)",), stacks.LOOP),
        # the innermost frame that says what the time was for
        (
            step("decode (agents/bids.py:30)", "decode_command (app/domain/codec.py:165)"),
            stacks.DECODE,
        ),
        (
            step(
                "decode (agents/bids.py:30)",
                "decode_command (app/domain/codec.py:165)",
                "load_object (app/domain/wire.py:88)",
            ),
            stacks.DECODE,
        ),
        (
            step("encode_event (app/domain/writers.py:223)", "_write (app/domain/writers.py:76)"),
            stacks.ENCODE,
        ),
        (step("handle (agents/bids.py:56)", "evolve (app/domain/auction.py:240)"), stacks.DOMAIN),
        (step("count (agents/bid_rate.py:30)"), stacks.BID_RATE),
        (step(), stacks.STEP),
        # generated code (dataclass __init__, slot builders) counts for its caller
        (step("handle (agents/bids.py:56)", "build (<string>:14)"), stacks.DOMAIN),
        (step("__create_fn__.<locals>.__init__ (<string>:3)"), stacks.STEP),
        # JSON of a table (a stored state read, a changelog record at commit) is the tables' work
        (
            step(
                "Partition.entry (tables/partition.py:120)", "load_object (app/domain/wire.py:88)"
            ),
            stacks.TABLES,
        ),
        (
            commit(
                "Partition.changes (tables/partition.py:200)", "_write (app/domain/writers.py:76)"
            ),
            stacks.TABLES,
        ),
        (commit("RedisSink.put (app/engine/redis_sink.py:60)"), stacks.REDIS),
        (commit("helper (app/headers.py:12)"), stacks.LOOP),
        (("main (somewhere.py:1)",), stacks.OTHER),
    ],
)
def test_a_sample_goes_to_its_innermost_meaningful_frame(
    kafka: KafkaCalls, frames: tuple[str, ...], category: str
) -> None:
    profile = stacks.parse([engine(*frames, count=3)], kafka)
    assert profile.categories == {category: 3}


def test_only_the_engine_thread_is_categorized_and_every_thread_is_counted(
    kafka: KafkaCalls,
) -> None:
    lines = [
        engine("Engine._write (app/engine/loop.py:15)", count=6),
        engine(RUN, count=2),
        "thread (29633): outbid-redis;Thread.run (threading.py:982);RedisSink._serve (app/engine/redis_sink.py:70) 5",
        "thread (29621): MainThread;run (asyncio/runners.py:190) 4",
        "",  # blank and truncated lines are skipped, not fatal
        "thread (29635): outbid-engine;Engine.run (app/engine/loop.py:171",
    ]
    profile = stacks.parse(lines, kafka)
    assert profile.threads == {"outbid-engine": 8, "outbid-redis": 5, "MainThread": 4}
    assert profile.categories == {"Kafka: produce()": 6, stacks.LOOP: 2}
    assert profile.engine_samples == 8
    assert profile.shares() == {"Kafka: produce()": 0.75, stacks.LOOP: 0.25}


def test_no_engine_samples_gives_empty_shares() -> None:
    assert Profile(threads={"MainThread": 3}, categories={}).shares() == {}


def test_a_missing_source_file_has_no_kafka_calls(tmp_path: Path) -> None:
    assert KafkaCalls(tmp_path).at("app/engine/loop.py", 1) is None


def test_the_engines_own_kafka_calls_are_found() -> None:
    """On the real loop: the changelog records' aliased `produce(...)` and the offsets call whose
    argument is on a line of its own (both were counted as 'loop' by a text match)."""
    calls = KafkaCalls(REPO_ROOT)
    lines = (REPO_ROOT / "app/engine/loop.py").read_text().splitlines()

    def found(needle: str) -> set[str | None]:
        return {
            calls.at("app/engine/loop.py", number)
            for number, line in enumerate(lines, 1)
            if needle in line
        }

    assert found(".consume(") == {"consume"}
    assert found("produce(topic, key=key") == {"produce"}
    assert found("self.consumer.consumer_group_metadata()") == {"send_offsets_to_transaction"}
    assert found("self.producer.commit_transaction(") == {"commit_transaction"}
    assert found("self.producer.begin_transaction(") == {"begin_transaction"}
