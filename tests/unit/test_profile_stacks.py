"""bench/profile_stacks.py: py-spy's raw stacks of a worker, grouped by what the engine spent them on."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import REPO_ROOT
from bench import profile_stacks as stacks
from bench.profile_stacks import Profile

ENGINE = "thread (29635): outbid-engine;Thread.run (threading.py:982);EngineService._run (app/engine/service.py:58)"
SOURCE = {
    (
        "app/engine/loop.py",
        168,
    ): "                batch = self.consumer.consume(batch_size, self._wait)",
    ("app/engine/loop.py", 171): "                        self._handle(message)",
    ("app/engine/loop.py", 236): "        result = self.step(tables, record)",
    ("app/engine/loop.py", 256): "            self.producer.produce(",
    (
        "app/engine/loop.py",
        388,
    ): "                self.producer.commit_transaction(KAFKA_TIMEOUT_S)",
}


def source(file: str, line: int) -> str:
    return SOURCE.get((file, line), "")


def engine(*frames: str, count: int = 1) -> str:
    return ";".join([ENGINE, "Engine.run (app/engine/loop.py:171)", *frames]) + f" {count}"


def step(*frames: str) -> tuple[str, ...]:
    return (
        "Engine._handle (app/engine/loop.py:236)",
        "CommandStep.__call__ (agents/step.py:97)",
        *frames,
    )


@pytest.mark.parametrize(
    ("frames", "category"),
    [
        # a Kafka call is told by the source line of the loop's frame that made it
        ((), stacks.LOOP),
        (("Engine._produce (app/engine/loop.py:256)",), "Kafka: produce()"),
        (("Engine._commit_transaction (app/engine/loop.py:388)",), "Kafka: commit_transaction()"),
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
        # a stored state's JSON is the table's work, not a command's decoding
        (
            (
                "Engine._handle (app/engine/loop.py:236)",
                "CommandStep.__call__ (agents/step.py:77)",
                "Partition.entry (tables/partition.py:120)",
                "load_object (app/domain/wire.py:88)",
            ),
            stacks.TABLES,
        ),
        (
            (
                "Engine._after_commit (app/engine/loop.py:400)",
                "RedisSink.put (app/engine/redis_sink.py:60)",
            ),
            stacks.REDIS,
        ),
        (
            ("Engine._after_commit (app/engine/loop.py:400)", "helper (app/headers.py:12)"),
            stacks.LOOP,
        ),
    ],
)
def test_a_sample_goes_to_its_innermost_meaningful_frame(
    frames: tuple[str, ...], category: str
) -> None:
    profile = stacks.parse([engine(*frames, count=3)], source)
    assert profile.categories == {category: 3}


def test_only_the_engine_thread_is_categorized_and_every_thread_is_counted() -> None:
    lines = [
        engine("Engine._produce (app/engine/loop.py:256)", count=6),
        engine(count=2),
        "thread (29633): outbid-redis;Thread.run (threading.py:982);RedisSink._serve (app/engine/redis_sink.py:70) 5",
        "thread (29621): MainThread;run (asyncio/runners.py:190) 4",
        "",  # blank and truncated lines are skipped, not fatal
        "thread (29635): outbid-engine;Engine.run (app/engine/loop.py:171",
    ]
    profile = stacks.parse(lines, source)
    assert profile.threads == {"outbid-engine": 8, "outbid-redis": 5, "MainThread": 4}
    assert profile.categories == {"Kafka: produce()": 6, stacks.LOOP: 2}
    assert profile.engine_samples == 8
    assert profile.shares() == {"Kafka: produce()": 0.75, stacks.LOOP: 0.25}


def test_no_engine_samples_gives_empty_shares() -> None:
    assert Profile(threads={"MainThread": 3}, categories={}).shares() == {}


def test_source_lines_read_the_repository(tmp_path: Path) -> None:
    line_of = stacks.source_lines(REPO_ROOT)
    assert "consume(" in line_of(
        "app/engine/loop.py", _line_with("app/engine/loop.py", ".consume(")
    )
    assert line_of("app/engine/loop.py", 10**6) == ""
    assert line_of("no/such/file.py", 1) == ""
    assert stacks.source_lines(tmp_path)("app/engine/loop.py", 1) == ""


def test_the_loops_kafka_calls_are_on_lines_the_categories_know() -> None:
    """If the loop's calls were renamed, the profile would put Kafka's time under 'loop'."""
    text = (REPO_ROOT / "app/engine/loop.py").read_text()
    for call in (".consume(", ".produce(", "commit_transaction(", "send_offsets_to_transaction("):
        assert call in text, call


def _line_with(file: str, needle: str) -> int:
    lines = (REPO_ROOT / file).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)
