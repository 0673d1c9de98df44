"""`outbid bench failover`: seconds after `kill -9` of one of two workers until every auction of
its partitions answers correctly on the survivor.

Two workers hold a history of K auctions (`outbid loadgen`); the answer of every auction is
read while both run (the expected answers). Then worker 1 is killed with SIGKILL and the
survivor is asked for each of worker 1's auctions, over and over, until all answer 200 with the
expected seq and highest bid. Two cases:
  - `takeover`: worker 1 stays dead; the survivor gets its partitions once the group's session
    timeout (OUTBID_SESSION_TIMEOUT_S, static membership) expires, recovers their tables (its own
    local copies if it held them before, else snapshots, else the changelogs) and serves them;
  - `restart`: worker 1 is started again at once under the same instance; it rejoins inside the
    session timeout and gets its own partitions back without a rebalance (the survivor forwards
    the queries to it once it is ready).
Medians of the repeats first in the JSON, raw runs after them.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click
import orjson
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from app.devstack import processes
from app.devstack import workers as worker_procs
from app.devstack.workers import get_json
from app.errors import OutbidError
from app.loadgen import LoadSpec
from app.loadgen import run as send_load
from app.settings import Settings, get_settings
from app.topics.partitioner import partition_for
from app.topics.spec import COMMANDS
from bench import throughput_stack as stack

POLL_S = 0.05
ANSWER_TIMEOUT_S = 300.0


class FailoverBenchError(OutbidError):
    """The failover benchmark could not measure (a worker died, answers never became right)."""


@dataclass(frozen=True, slots=True)
class Measured:
    case: str
    seconds: float  # kill -> every auction of the killed worker's partitions answers right
    auctions: int
    partitions: list[int]
    session_timeout_s: float


@dataclass
class Report:
    medians: dict[str, float] = field(default_factory=dict)
    runs: list[Measured] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)


def expected_answers(url: str, auctions: list[str]) -> dict[str, tuple[object, object]]:
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda a: get_json(f"{url}/auctions/{a}", timeout=10), auctions))
    wrong = [a for a, (status, _) in zip(auctions, answers, strict=True) if status != 200]
    if wrong:
        raise FailoverBenchError(
            f"{len(wrong)} auction(s) do not answer before the kill: {wrong[:3]}"
        )
    return {
        a: (body.get("seq"), body.get("highest_bid"))
        for a, (_s, body) in zip(auctions, answers, strict=True)
    }


def all_right(
    url: str, expected: dict[str, tuple[object, object]], pool: ThreadPoolExecutor
) -> bool:
    def right(auction: str) -> bool:
        status, body = get_json(f"{url}/auctions/{auction}", timeout=5)
        return status == 200 and (body.get("seq"), body.get("highest_bid")) == expected[auction]

    return all(pool.map(right, expected))


def measure(
    case: str, settings: Settings, env: dict[str, str], root: Path, auctions: int
) -> Measured:
    partitions_count = stack.create_topics(settings)
    workers = stack.Workers(root, {**env, "OUTBID_STATE_DIR": str(root / "state")})
    workers.start(2)
    try:
        load = LoadSpec(
            commands=auctions * 20,
            auctions=auctions,
            garbage=0,
            duplicates=0,
            run_id=f"F{uuid.uuid4().hex[:4]}",
        )
        report = send_load(load, settings.kafka_client_config(), settings.topic(COMMANDS))
        ids = [f"{load.run_id}-{i}" for i in range(auctions)]
        workers.wait_written(report.total, redis=settings.redis_enabled, timeout_s=600)
        killed, survivor = workers.specs
        _status, ready = get_json(f"{killed.url}/readyz")
        assigned = ready.get("assigned") or {}
        partitions = (
            sorted(p for ps in assigned.values() for p in ps) if isinstance(assigned, dict) else []
        )
        mine = [a for a in ids if partition_for(a.encode(), partitions_count) in partitions]
        expected = expected_answers(survivor.url, mine)
        started = time.monotonic()
        processes.kill(workers.pids[0])
        if case == "restart":
            workers.pids[0] = worker_procs.start(killed, workers.env)
        with ThreadPoolExecutor(16) as pool:
            while not all_right(survivor.url, expected, pool):
                if time.monotonic() - started > ANSWER_TIMEOUT_S:
                    raise FailoverBenchError(
                        f"{case}: answers not right after {ANSWER_TIMEOUT_S:.0f}s"
                    )
                if not processes.alive(workers.pids[1]):
                    raise FailoverBenchError(f"the survivor exited; see {survivor.log_file}")
                time.sleep(POLL_S)
        return Measured(
            case,
            round(time.monotonic() - started, 2),
            len(mine),
            partitions,
            settings.session_timeout_s,
        )
    finally:
        workers.stop()


@click.command()
@click.option("--repeats", default=3, show_default=True, type=click.IntRange(1, 20))
@click.option("--auctions", default=2_000, show_default=True, type=click.IntRange(10))
@click.option(
    "--cases",
    default="takeover,restart",
    show_default=True,
    help="takeover (the survivor takes the partitions), restart (the killed worker comes back).",
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path))
def failover_command(repeats: int, auctions: int, cases: str, json_path: Path | None) -> None:
    """Seconds from kill -9 of one of two workers until its auctions answer right again."""
    chosen = [c.strip() for c in cases.split(",") if c.strip()]
    unknown = set(chosen) - {"takeover", "restart"}
    if unknown:
        raise click.BadParameter(f"unknown case(s) {sorted(unknown)}", param_hint="--cases")
    base = get_settings()
    console = Console(stderr=True)
    result = Report(source=stack.source_revision())
    with tempfile.TemporaryDirectory(prefix="outbid-bench-failover-") as scratch:
        root = Path(scratch)
        with stack.servers(root, base.kafka_heap) as found:
            for repeat in range(repeats):
                for case in chosen:
                    prefix = f"{base.topic_prefix}fo{repeat}{case[0]}{uuid.uuid4().hex[:4]}."
                    settings = base.model_copy(
                        update={
                            "kafka_bootstrap_servers": found.kafka,
                            "redis_url": SecretStr(found.redis),
                            "topic_prefix": prefix,
                        }
                    )
                    env = {
                        "KAFKA_BOOTSTRAP_SERVERS": found.kafka,
                        "REDIS_URL": found.redis,
                        "OUTBID_TOPIC_PREFIX": prefix,
                    }
                    console.print(f"[bold]{case}[/] repeat {repeat + 1}/{repeats} ...")
                    run = measure(case, settings, env, root / prefix, auctions)
                    console.print(f"  {run.seconds:.2f} s for {run.auctions} auctions")
                    result.runs.append(run)
                    if not found.private:
                        stack.delete_topics(settings)
    for case in chosen:
        result.medians[case] = statistics.median(r.seconds for r in result.runs if r.case == case)
    result.config = {
        "repeats": repeats,
        "auctions": auctions,
        "cases": chosen,
        "session_timeout_s": base.session_timeout_s,
        "snapshot_interval_s": base.snapshot_interval_s,
    }
    table = Table(title="failover: kill -9 of one of two workers")
    table.add_column("case")
    table.add_column("median s", justify="right")
    table.add_column("runs", justify="right")
    for case in chosen:
        runs = ", ".join(f"{r.seconds:.1f}" for r in result.runs if r.case == case)
        table.add_row(case, f"{result.medians[case]:.2f}", runs)
    Console().print(table)
    if json_path is not None:
        json_path.write_bytes(orjson.dumps(asdict(result), option=orjson.OPT_INDENT_2))
