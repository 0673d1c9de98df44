"""py-spy's raw (collapsed) stacks of a worker, grouped by what the engine thread spent them on.

One line of `py-spy record --format raw --threads` is a stack and its sample count:

    thread (29635): outbid-engine;Thread.run (threading.py:982);...;Engine._handle (app/engine/loop.py:236) 10

Frames are `function (file:line)`, the leaf last. A sample goes to the category of its innermost
frame that says what the time was for: the domain, the tables, Redis, or a Kafka client call of
the loop (told apart by the source line the frame is on, since py-spy shows the Python frame that
called into librdkafka, not librdkafka itself). Frames of generated code (`<string>`: dataclass
initialisers, the domain's slot builders) count for their caller.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ENGINE_THREAD = "outbid-engine"  # app/engine/service.py names the loop's thread

DECODE = "step: decode commands"
DOMAIN = "step: decide, evolve, project (app/domain, agents)"
ENCODE = "step: encode events, states, views"
BID_RATE = "step: bid-rate window"
STEP = "step: the rest (agents/step.py, records)"
TABLES = "tables: RocksDB, cache, changelog records"
REDIS = "Redis read model"
LOOP = "loop: the rest (app/engine)"
OTHER = "other"
# A loop frame on a line with one of these calls is waiting in (or working inside) that call.
KAFKA_CALLS = (
    (".consume(", "Kafka: consume()"),
    (".produce(", "Kafka: produce()"),
    ("commit_transaction(", "Kafka: commit_transaction()"),
    ("send_offsets_to_transaction(", "Kafka: send_offsets_to_transaction()"),
    ("begin_transaction(", "Kafka: begin_transaction()"),
    ("abort_transaction(", "Kafka: abort_transaction()"),
    (".poll(", "Kafka: poll()"),
    (".flush(", "Kafka: flush()"),
)
ENGINE_FILES = ("app/engine/",)
DOMAIN_FILES = ("app/domain/", "agents/bids.py", "agents/highest_bids.py")
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")
SourceLine = Callable[[str, int], str]  # (file, line) -> its text


@dataclass(frozen=True, slots=True)
class Profile:
    threads: dict[str, int]  # samples per thread name
    categories: dict[str, int]  # the engine thread's samples per category, most first

    @property
    def engine_samples(self) -> int:
        return sum(self.categories.values())

    def shares(self) -> dict[str, float]:
        total = self.engine_samples or 1
        return {name: round(count / total, 4) for name, count in self.categories.items()}


def source_lines(root: Path) -> SourceLine:
    """The text of a source line under `root` (empty when the file or line is not there)."""

    @cache
    def lines(file: str) -> list[str]:
        path = root / file
        return path.read_text().splitlines() if path.is_file() else []

    def line_of(file: str, line: int) -> str:
        found = lines(file)
        return found[line - 1] if 0 < line <= len(found) else ""

    return line_of


def parse(lines: Iterable[str], source: SourceLine) -> Profile:
    threads: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    for raw in lines:
        stack, _, count = raw.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue  # a blank or truncated line
        thread, *frames = stack.split(";")
        name = thread.split(": ", 1)[1] if ": " in thread else thread
        threads[name] += int(count)
        if name == ENGINE_THREAD:
            categories[categorize(frames, source)] += int(count)
    return Profile(dict(threads.most_common()), dict(categories.most_common()))


def categorize(frames: list[str], source: SourceLine) -> str:
    parsed = [m for m in map(FRAME.match, frames) if m]
    files = {m["file"] for m in parsed}
    for frame in reversed(parsed):
        found = _category(frame["file"], int(frame["line"]), files, source)
        if found:
            return found
    return OTHER


def _category(file: str, line: int, files: set[str], source: SourceLine) -> str | None:
    """The frame's category, or None to ask its caller (generated code, unknown files)."""
    if file == "app/domain/wire.py":  # JSON in and out: a command's, or a stored state's
        return DECODE if "app/domain/codec.py" in files else None
    found = next((name for matches, name in FILE_RULES if matches(file)), None)
    if found is None and file.startswith(ENGINE_FILES):
        text = source(file, line)
        return next((name for call, name in KAFKA_CALLS if call in text), LOOP)
    return found


FILE_RULES: tuple[tuple[Callable[[str], bool], str], ...] = (
    (lambda file: file.startswith("tables/") or "rocksdict" in file, TABLES),
    (lambda file: "redis" in file, REDIS),
    (lambda file: file == "app/domain/codec.py", DECODE),
    (lambda file: file == "app/domain/writers.py", ENCODE),
    (lambda file: file.startswith(DOMAIN_FILES), DOMAIN),
    (lambda file: file == "agents/bid_rate.py", BID_RATE),
    (lambda file: file.startswith("agents/"), STEP),
)
