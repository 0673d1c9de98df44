"""`outbid bench recovery`: time for a fresh worker to serve correct answers, by recovery method.

For histories of H decision events over the same K auctions (bench/recovery_history.py writes
them), a worker with no local tables is started and timed from process start until /readyz
answers ready and a sample of auctions all answer the right seq and highest bid. The engine
recovers each table partition on assignment (tables/recovery.py): the local database, else the
newest table snapshot, then the changelog after it. Measured:
  (a) replay: fold the whole event log into aggregates and views (in this process: the work a
      worker would have to do without tables);
  (b) changelog: a fresh worker without snapshots (OUTBID_SNAPSHOT_INTERVAL_S=0) replays the
      whole changelog of every table partition;
  (c) snapshot: a fresh worker with snapshots restores the newest one of each table partition
      (taken by a worker before the last `tail` events), then replays the changelog after it;
  (d) snapshot from the object store: the same, with the snapshots in an S3-compatible store
      (SeaweedFS on loopback, or OUTBID_S3_ENDPOINT_URL): what a worker on another machine does.
      The snapshots of (c) are put there with the store's own upload (app/snapshots/s3.py).
The methods alternate within each repeat, so their ratios come from the same conditions; medians
go first in the JSON, raw runs after them. See docs/snapshots.md.
"""

from __future__ import annotations

import contextlib
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import click
import orjson
from confluent_kafka import KafkaException
from pydantic import SecretStr
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.devstack import processes
from app.devstack import workers as worker_procs
from app.devstack.seaweedfs import SeaweedS3
from app.errors import OutbidError
from app.settings import Settings, get_settings
from app.snapshots.blobs import DirectoryBlobStore
from app.snapshots.s3 import S3BlobStore, S3Location
from app.topics import load_topics
from app.topics.spec import COMMANDS
from bench import throughput_kafka as kafka
from bench import throughput_stack as stack
from bench.recovery_history import History, fold_event_log
from bench.throughput import comma_ints
from bench.throughput_stats import counter_total
from tables.partition import TABLES

TABLE_NAMES = tuple(table.name for table in TABLES)
READY_TIMEOUT_S = 1800.0
# Every worker of the benchmark is the same instance (OUTBID_INSTANCE): a new one takes the
# stopped one's place in the group at once (static membership), never waiting for its session
# to time out, and fences its transactional id as a restart would.
INSTANCE = "bench-recovery"


class RecoveryBenchError(OutbidError):
    """The recovery benchmark could not measure (a worker died, answers never became right)."""


@dataclass(frozen=True, slots=True)
class RecoverySpec:
    auctions: int = 10_000
    histories: tuple[int, ...] = (1_000_000, 2_000_000)
    repeats: int = 3
    tail: int = 10_000  # events written after the snapshot: what (c) replays
    sample: int = 200  # auctions whose answers must be right

    @classmethod
    def quick(cls) -> RecoverySpec:
        return cls(auctions=2_000, histories=(75_000, 150_000), repeats=2, tail=2_000)


@dataclass
class Run:
    method: str
    seconds: float  # process start (or fold start) -> ready and every sampled answer right
    ready_s: float = 0.0  # process start -> /readyz 200
    engine_recovery_s: float = 0.0  # the engine's own time recovering (outbid_recovery_seconds)
    records_replayed: dict[str, float] = field(default_factory=dict)
    snapshots_restored: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: float = 0.0


Expected = dict[str, tuple[int, int | None]]


@dataclass
class Bench:
    settings: Settings
    root: Path
    history: History
    console: Console
    s3: dict[str, str] | None = None  # the object store's settings (OUTBID_SNAPSHOT_URL, ...)

    @property
    def partitions(self) -> int:
        return load_topics(self.settings.topics_file).partitions(COMMANDS)

    def worker_env(
        self, *, snapshots: bool, interval_s: float = 3600, s3: bool = False
    ) -> dict[str, str]:
        return (self.s3 if s3 and self.s3 else {}) | {
            "KAFKA_BOOTSTRAP_SERVERS": self.settings.kafka_bootstrap_servers,
            "REDIS_URL": self.settings.redis_url.get_secret_value(),
            "OUTBID_TOPIC_PREFIX": self.settings.topic_prefix,
            "OUTBID_INSTANCE": INSTANCE,
            # Tables only: a worker that writes Redis also re-writes every recovered view to it
            # (app/engine/loop.py), a cost of the read model, not of recovering the tables.
            "OUTBID_REDIS_ENABLED": "false",
            "OUTBID_STATE_DIR": str(self.root / "state"),
            "OUTBID_SNAPSHOT_DIR": str(self.root / "snapshots"),
            "OUTBID_SNAPSHOT_INTERVAL_S": str(interval_s) if snapshots else "0",
            "OUTBID_SNAPSHOT_EVERY_WRITES": "0",
        }

    def start(self, env: dict[str, str]) -> tuple[worker_procs.WorkerSpec, int]:
        """A worker with a data folder of its own: no local table database."""
        spec = worker_procs.WorkerSpec(
            1, processes.free_port(), self.root / f"worker-{uuid.uuid4().hex[:6]}"
        )
        return spec, worker_procs.start(spec, env)

    def time_worker(self, method: str, env: dict[str, str], expected: Expected) -> Run:
        started = time.perf_counter()
        spec, pid = self.start(env)
        try:
            ready_s = _wait(spec, pid, started, lambda: _ready(spec))
            seconds = _wait(spec, pid, started, lambda: _answers_right(spec.url, expected))
            text = _metrics(spec.url)
            return Run(
                method,
                seconds,
                ready_s,
                round(counter_total(text, "outbid_recovery_seconds_sum"), 3),
                {
                    t: counter_total(text, "outbid_recovery_records_total", {"table": t})
                    for t in TABLE_NAMES
                },
                {
                    t: counter_total(text, "outbid_snapshot_restores_total", {"table": t})
                    for t in TABLE_NAMES
                },
                stack.peak_rss_mb(pid),
            )
        finally:
            processes.stop(pid)
            shutil.rmtree(spec.data_dir, ignore_errors=True)

    def take_snapshots(self) -> int:
        """A worker with snapshots every second recovers, decides one bid on an auction of each
        partition (a table partition is checkpointed only after it was written), and stops once
        every table partition has a snapshot newer than those bids. Returns their bytes."""
        spec, pid = self.start(self.worker_env(snapshots=True, interval_s=1))
        store = self.root / "snapshots"
        commands = self.settings.topic(COMMANDS)
        try:
            _wait(spec, pid, time.perf_counter(), lambda: _ready(spec))
            partitions = self.partitions
            written_after = time.time()
            bids = self.history.bids_for_every_partition(partitions)
            kafka.send_all(self.settings.kafka_client_config(), commands, bids)
            touched = self.history.expected([key.decode() for key, _ in bids])
            _wait(spec, pid, time.perf_counter(), lambda: _answers_right(spec.url, touched))

            def all_fresh() -> bool:
                fresh = {
                    (p.parent.parent.name, p.parent.name)
                    for p in store.glob("*/*/*/*.json")
                    if p.stat().st_mtime >= written_after and p.parent.parent.name in TABLE_NAMES
                }
                return len(fresh) == len(TABLE_NAMES) * partitions

            _wait(spec, pid, time.perf_counter(), all_fresh)
        finally:
            processes.stop(pid)
            shutil.rmtree(spec.data_dir, ignore_errors=True)
        newest: dict[tuple[str, str], Path] = {}
        for p in sorted(store.glob("*/*/*/*.tar")):
            newest[(p.parent.parent.name, p.parent.name)] = p
        return sum(p.stat().st_size for p in newest.values())

    def mirror_to_s3(self) -> None:
        """Put every snapshot of the directory store into the object store, same keys."""
        if self.s3 is None:
            return
        folder = self.root / "snapshots"
        local = DirectoryBlobStore(folder)
        remote = S3BlobStore(
            S3Location.parse(self.s3["OUTBID_SNAPSHOT_URL"]),
            endpoint_url=self.s3["OUTBID_S3_ENDPOINT_URL"],
            access_key=self.s3["OUTBID_S3_ACCESS_KEY_ID"],
            secret_key=self.s3["OUTBID_S3_SECRET_ACCESS_KEY"],
        )
        remote.ensure_bucket()
        keys = local.list("")
        for key in sorted(keys, key=lambda k: k.endswith(".json")):  # manifests last
            remote.put(key, folder / key)

    def replay(self, expected: Expected) -> Run:
        """(a): fold every event of the log, as a worker without tables would have to."""
        started = time.perf_counter()
        states, views = fold_event_log(self.settings)
        seconds = time.perf_counter() - started
        wrong = [
            a for a, want in expected.items() if (states[a].version, views[a].highest_bid) != want
        ]
        if wrong:
            raise RecoveryBenchError(f"the replay disagrees with the history for {wrong[:3]}")
        return Run("replay", seconds, seconds)


@contextlib.contextmanager
def object_store(settings: Settings, folder: Path) -> Iterator[dict[str, str]]:
    """The worker settings of (d)'s object store: the one the settings name, else SeaweedFS."""
    bucket = f"s3://outbid-bench-{uuid.uuid4().hex[:8]}/recovery"
    if settings.s3_endpoint_url:
        key, secret = settings.s3_access_key_id, settings.s3_secret_access_key
        yield {
            "OUTBID_SNAPSHOT_URL": bucket,
            "OUTBID_S3_ENDPOINT_URL": settings.s3_endpoint_url,
            "OUTBID_S3_ACCESS_KEY_ID": key.get_secret_value() if key else "",
            "OUTBID_S3_SECRET_ACCESS_KEY": secret.get_secret_value() if secret else "",
        }
        return
    server = SeaweedS3(folder, port=processes.free_port())
    server.start()
    try:
        yield {
            "OUTBID_SNAPSHOT_URL": bucket,
            "OUTBID_S3_ENDPOINT_URL": server.endpoint,
            "OUTBID_S3_ACCESS_KEY_ID": server.access_key,
            "OUTBID_S3_SECRET_ACCESS_KEY": server.secret_key,
        }
    finally:
        server.stop()


def _ready(spec: worker_procs.WorkerSpec) -> bool:
    return worker_procs.get_json(f"{spec.url}/readyz")[0] == 200


def _wait(
    spec: worker_procs.WorkerSpec, pid: int, started: float, check: Callable[[], bool]
) -> float:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if not processes.alive(pid):
            raise RecoveryBenchError(
                f"worker exited; last lines of {spec.log_file}:\n{processes.tail(spec.log_file, 20)}"
            )
        try:
            if check():
                return time.perf_counter() - started
        except OSError:
            pass  # not listening yet
        if time.monotonic() > deadline:
            raise RecoveryBenchError(
                f"no correct answers after {READY_TIMEOUT_S:.0f} s; see {spec.log_file}"
            )
        time.sleep(0.1)


def _answers_right(url: str, expected: Expected) -> bool:
    for aid, (seq, highest) in expected.items():
        status, answer = worker_procs.get_json(f"{url}/auctions/{aid}", timeout=10)
        if status != 200 or (answer.get("seq"), answer.get("highest_bid")) != (seq, highest):
            return False
    return True


def _metrics(url: str) -> str:
    import urllib.request  # noqa: PLC0415

    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as answer:  # noqa: S310 - our loopback worker
        return str(answer.read().decode())


def _median(runs: list[Run], method: str) -> float:
    return round(statistics.median(r.seconds for r in runs if r.method == method), 3)


def measure(bench: Bench, spec: RecoverySpec, bar: Progress) -> list[dict[str, Any]]:
    rows = []
    for target in spec.histories:
        history = bench.history
        grow = bar.add_task(f"history to {target:,} events", total=target - history.events)

        def tick(count: int, task: Any = grow) -> None:
            bar.advance(task, count)

        # the snapshot worker decides one bid per partition: its events count toward the target
        history.grow(target - history.events - spec.tail - bench.partitions, tick)
        history.commit_as_processed()
        bar.update(grow, description=f"snapshots at {history.events:,} events")
        snapshot_bytes = bench.take_snapshots()
        bench.mirror_to_s3()
        bar.advance(grow, bench.partitions)  # the snapshot worker's bids
        history.grow(target - history.events, tick)  # the tail that (c) replays
        history.commit_as_processed()
        expected = history.sample(spec.sample)
        runs: list[Run] = []
        methods = 4 if bench.s3 else 3
        timing = bar.add_task(
            f"timing recovery at {history.events:,} events", total=spec.repeats * methods
        )
        for _ in range(spec.repeats):
            runs.append(bench.replay(expected))
            bar.advance(timing)
            runs.append(bench.time_worker("changelog", bench.worker_env(snapshots=False), expected))
            bar.advance(timing)
            runs.append(bench.time_worker("snapshot", bench.worker_env(snapshots=True), expected))
            bar.advance(timing)
            if bench.s3:
                env = bench.worker_env(snapshots=True, s3=True)
                runs.append(bench.time_worker("snapshot_s3", env, expected))
                bar.advance(timing)
        changelog_s, snapshot_s = _median(runs, "changelog"), _median(runs, "snapshot")
        inside = {
            method: round(
                statistics.median(r.engine_recovery_s for r in runs if r.method == method), 3
            )
            for method in ("changelog", "snapshot", "snapshot_s3")
            if any(r.method == method for r in runs)
        }
        s3_s = _median(runs, "snapshot_s3") if bench.s3 else None
        rows.append(
            {
                "history_events": history.events,
                "auctions": spec.auctions,
                "replay_s": _median(runs, "replay"),
                "changelog_recovery_s": changelog_s,
                "snapshot_recovery_s": snapshot_s,
                "speedup": round(changelog_s / snapshot_s, 2),
                "snapshot_s3_recovery_s": s3_s,
                "speedup_s3": round(changelog_s / s3_s, 2) if s3_s else None,
                # the engine's own recovery time, without the process start-up
                "changelog_engine_recovery_s": inside["changelog"],
                "snapshot_engine_recovery_s": inside["snapshot"],
                "snapshot_s3_engine_recovery_s": inside.get("snapshot_s3"),
                "snapshot_bytes": snapshot_bytes,
                "tail_events": spec.tail,
                "runs": [asdict(r) for r in runs],
            }
        )
    return rows


@click.command()
@click.option("--quick", is_flag=True, help="A smaller history (a few minutes on 2 cores).")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--plot",
    "plot_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="PNG (default: next to --json).",
)
@click.option("--auctions", type=click.IntRange(1), help="K: auctions (same for every history).")
@click.option("--histories", help="H values, comma-separated (e.g. 1000000,2000000).")
@click.option("--repeats", type=click.IntRange(1))
@click.option("--tail", type=click.IntRange(1), help="Events written after the snapshots.")
@click.option(
    "--s3/--no-s3",
    default=True,
    show_default=True,
    help="Also time (d): the snapshots restored from an S3-compatible store (SeaweedFS on "
    "loopback, or the one OUTBID_S3_ENDPOINT_URL names).",
)
def recovery_command(
    quick: bool,
    json_file: Path | None,
    plot_file: Path | None,
    auctions: int | None,
    histories: str | None,
    repeats: int | None,
    tail: int | None,
    s3: bool,
) -> None:
    """Replay vs. changelog recovery vs. snapshot restore (directory, object store)."""
    spec = RecoverySpec.quick() if quick else RecoverySpec()
    if histories:
        spec = replace(spec, histories=comma_ints(histories))
    spec = replace(
        spec,
        auctions=auctions or spec.auctions,
        repeats=repeats or spec.repeats,
        tail=tail or spec.tail,
    )
    settings = get_settings()
    partitions = load_topics(settings.topics_file).partitions(COMMANDS)
    if min(spec.histories) <= spec.auctions + spec.tail + partitions:
        raise click.BadParameter(
            f"every history must hold more events than auctions + tail + {partitions} "
            "(one bid per partition before the snapshots)"
        )
    console = Console(stderr=True)
    machine = stack.machine_info()
    source = stack.source_revision()
    try:
        with tempfile.TemporaryDirectory(prefix="outbid-bench-recovery-") as scratch:
            root = Path(scratch)
            with (
                stack.servers(root, settings.kafka_heap) as servers,
                contextlib.ExitStack() as resources,
            ):
                scoped = settings.model_copy(
                    update={
                        "kafka_bootstrap_servers": servers.kafka,
                        "redis_url": SecretStr(servers.redis),
                        "topic_prefix": f"bench-recovery-{uuid.uuid4().hex[:6]}.",
                    }
                )
                stack.create_topics(scoped)
                bench = Bench(scoped, root, History(scoped, spec.auctions), console)
                if s3:
                    bench.s3 = resources.enter_context(object_store(settings, root / "s3"))
                columns = (
                    TextColumn("{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                )
                try:
                    with Progress(*columns, console=console) as bar:
                        rows = measure(bench, spec, bar)
                finally:
                    if not servers.private:  # a private stack is discarded whole
                        stack.delete_topics(scoped)
    except KafkaException as exc:
        raise RecoveryBenchError(f"Kafka failed during the benchmark: {exc.args[0]}") from exc
    machine["load_avg_end"] = stack.load_average()
    first = {k: v for k, v in rows[0].items() if k != "runs"}
    report = {
        **first,
        "histories": rows,
        "source": source,
        "machine": machine,
        "config": {
            **asdict(spec),
            "quick": quick,
            "partitions": partitions,
            "tables": list(TABLE_NAMES),
            "redis": False,
            "object_store": "SeaweedFS (native, loopback)"
            if s3 and not settings.s3_endpoint_url
            else (settings.s3_endpoint_url or None),
            "servers": "private" if servers.private else "given",
        },
    }
    table = Table(title="time to correct answers on a fresh worker (medians, seconds)")
    for column in (
        "history events",
        "auctions",
        "(a) replay",
        "(b) changelog",
        "(c) snapshot",
        "(d) from S3",
        "b / c",
        "b / c in engine",
        "snapshot MB",
    ):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            f"{row['history_events']:,}",
            f"{row['auctions']:,}",
            f"{row['replay_s']:.1f}",
            f"{row['changelog_recovery_s']:.1f}",
            f"{row['snapshot_recovery_s']:.1f}",
            f"{row['snapshot_s3_recovery_s']:.1f}" if row["snapshot_s3_recovery_s"] else "-",
            f"{row['speedup']:.1f}x",
            f"{row['changelog_engine_recovery_s']:.1f}/{row['snapshot_engine_recovery_s']:.1f}",
            f"{row['snapshot_bytes'] / 1e6:.1f}",
        )
    Console().print(table)
    if json_file:
        json_file.parent.mkdir(parents=True, exist_ok=True)
        json_file.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
        console.print(f"JSON: {json_file}")
        plot_file = plot_file or json_file.with_suffix(".png")
    if plot_file:
        from bench.recovery_plot import plot  # noqa: PLC0415 - matplotlib is slow to import

        plot(rows, plot_file)
        console.print(f"plot: {plot_file}")
