"""py-spy's raw (collapsed) stacks of a worker, grouped by what the engine thread spent them on.

One line of `py-spy record --format raw --threads` is a stack and its sample count:

    thread (29635): outbid-engine;Thread.run (threading.py:982);...;Engine._handle (app/engine/loop.py:236) 10

Frames are `function (file:line)`, the leaf last. A sample goes to the category of its innermost
frame that says what the time was for: the domain, the tables, Redis, or a Kafka client call of
the engine. py-spy shows the Python frame that called into librdkafka, not librdkafka itself, so
a Kafka call is told by the line that frame is on: `KafkaCalls` reads the engine's source and
knows, for every line, which client call (`self.producer.X(...)`, `self.consumer.X(...)`, or a
local alias such as `produce = self.producer.produce`) spans it; the outermost call wins over the
calls in its arguments. Frames of generated code (`<string>`: dataclass initialisers, the
domain's slot builders) count for their caller.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
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
KAFKA = "Kafka: {}()"  # the client method
CLIENTS = ("producer", "consumer")  # the engine's attributes holding its Kafka clients
ENGINE_FILES = "app/engine/"
DOMAIN_FILES = ("app/domain/", "agents/bids.py", "agents/highest_bids.py")
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")


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


@dataclass
class KafkaCalls:
    """Which Kafka client method each line of the engine's source files calls."""

    root: Path
    _files: dict[str, dict[int, str]] = field(default_factory=dict)

    def at(self, file: str, line: int) -> str | None:
        if file not in self._files:
            path = self.root / file
            self._files[file] = client_calls(path.read_text()) if path.is_file() else {}
        return self._files[file].get(line)


def client_calls(source: str) -> dict[int, str]:
    """Line -> the Kafka client method called on it (or by a call spanning it)."""
    tree = ast.parse(source)
    aliases = {
        node.targets[0].id: method
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name)
        and (method := _client_method(node.value))
    }
    calls = [
        (node, method)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (
            method := _client_method(node.func)
            or (aliases.get(node.func.id) if isinstance(node.func, ast.Name) else None)
        )
    ]
    lines: dict[int, str] = {}
    # widest first: a line inside an outer call's arguments belongs to the outer call
    for node, method in sorted(
        calls, key=lambda c: (c[0].end_lineno or 0) - c[0].lineno, reverse=True
    ):
        for line in range(node.lineno, (node.end_lineno or node.lineno) + 1):
            lines.setdefault(line, method)
    return lines


def _client_method(node: ast.expr) -> str | None:
    """`X` of `self.producer.X` / `self.consumer.X`."""
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr in CLIENTS
        and isinstance(node.value.value, ast.Name)
        and node.value.value.id == "self"
    ):
        return node.attr
    return None


def parse(lines: Iterable[str], kafka: KafkaCalls) -> Profile:
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
            categories[categorize(frames, kafka)] += int(count)
    return Profile(dict(threads.most_common()), dict(categories.most_common()))


def categorize(frames: list[str], kafka: KafkaCalls) -> str:
    parsed = [m for m in map(FRAME.match, frames) if m]
    files = {m["file"] for m in parsed}
    for frame in reversed(parsed):
        found = _category(frame["file"], int(frame["line"]), files, kafka)
        if found:
            return found
    return OTHER


def _category(file: str, line: int, files: set[str], kafka: KafkaCalls) -> str | None:
    """The frame's category, or None to ask its caller (generated code, unknown files)."""
    if file in ("app/domain/wire.py", "app/domain/writers.py"):
        return _json(file, files)
    found = next((name for matches, name in FILE_RULES if matches(file)), None)
    if found is None and file.startswith(ENGINE_FILES):
        method = kafka.at(file, line)
        return KAFKA.format(method) if method else LOOP
    return found


def _json(file: str, files: set[str]) -> str | None:
    """JSON in and out is the step's when it is a command's or the step's records; a table's
    (a stored state read, a changelog record encoded at commit) is the tables' work."""
    if any(f.startswith("tables/") for f in files):
        return None
    if file == "app/domain/wire.py":
        return DECODE if "app/domain/codec.py" in files else None
    return ENCODE


FILE_RULES: tuple[tuple[Callable[[str], bool], str], ...] = (
    (lambda file: file.startswith("tables/") or "rocksdict" in file, TABLES),
    (lambda file: "redis" in file, REDIS),
    (lambda file: file == "app/domain/codec.py", DECODE),
    (lambda file: file.startswith(DOMAIN_FILES), DOMAIN),
    (lambda file: file == "agents/bid_rate.py", BID_RATE),
    (lambda file: file.startswith("agents/"), STEP),
)
