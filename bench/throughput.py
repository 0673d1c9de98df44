"""`outbid bench throughput`: how fast the engine is on this machine, against what ceiling.

One run measures, on the same broker and with the same commands (app/loadgen.py's generator):
1. the ceiling: a minimal confluent-kafka consume -> decode -> encode -> produce loop that commits
   its transactions as the engine does (and once without transactions);
2. the engine: 1 and 2 `faust -A app worker` processes as `outbid dev up --workers N` starts
   them, commands fully processed per second (each command's events, table changelogs and offset
   committed in one transaction, its view then written to Redis), over a steady window;
3. end-to-end latency at 25/50/75/100% of that maximum, and at a steady 3,000 commands/s;
4. each worker's peak RSS, and throughput with 10x and 100x as many auctions.
Medians of the repeats go first in the JSON, every raw number after them, with the git commit
and the settings measured. See docs/benchmarks.md.
"""

from __future__ import annotations

import contextlib
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import click
import orjson
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.errors import OutbidError
from app.settings import Settings, get_settings
from app.topics import load_topics
from app.topics.spec import COMMANDS
from bench import throughput_phases as phases
from bench import throughput_stack as stack
from bench.throughput_stats import (
    STEADY_RATE,
    PipelineRun,
    Results,
    build_report,
    median_or_none,
)
from bench.verification import Cluster


class BenchError(OutbidError):
    """The benchmark could not complete; the message says which measurement and why."""


@dataclass(frozen=True, slots=True)
class BenchSpec:
    # Timed commands per engine run. 400,000, not 150,000: at ~40,000/s one worker's steady window
    # was ~3 s and two workers' 2-3 s (a few 250 ms transactions each), and the 2-worker figure
    # swung with the run's first and last transactions (1.19x-1.40x per pair in one full run);
    # at 400,000 the windows are ~9 s and ~5 s (docs/benchmarks.md, "How long a run is").
    commands: int = 400_000
    ceiling_commands: int = 100_000
    auctions: int = 1_000  # loadgen's default
    scales: tuple[int, ...] = (1, 10, 100)
    workers: tuple[int, ...] = (1, 2)
    repeats: int = 3
    latency_seconds: float = 30.0

    @classmethod
    def quick(cls) -> BenchSpec:
        """Under 5 minutes on 2 cores: each engine run and its repeats are the full run's
        (400,000 commands, the same steady window: 60,000 measured mostly the run's start and
        gave 70% of the full figure), with 1x auctions only and 8 s per latency level."""
        return cls(scales=(1,), latency_seconds=8.0)


def comma_ints(value: str) -> tuple[int, ...]:
    try:
        numbers = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers") from None
    if not numbers or min(numbers) < 1:
        raise click.BadParameter(f"{value!r}: give positive integers, e.g. 1,10,100")
    return numbers


@click.command()
@click.option("--quick", is_flag=True, help="A smaller run (under 5 minutes on 2 cores).")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--plot",
    "plot_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="PNG (default: next to --json).",
)
@click.option("--commands", type=click.IntRange(100), help="Timed commands per engine run.")
@click.option(
    "--ceiling-commands",
    type=click.IntRange(1_100),
    help="Commands in the ceiling's backlog (1,000 of them open auctions).",
)
@click.option("--auctions", type=click.IntRange(1), help="Auctions of the 1x runs [1000].")
@click.option("--auction-scales", help="Auction multipliers, e.g. 1,10,100.")
@click.option("--workers", "worker_counts", help="Worker counts to measure, e.g. 1,2.")
@click.option("--repeats", type=click.IntRange(1, 20), help="Repeats of ceiling and engine runs.")
@click.option(
    "--latency-seconds",
    type=click.FloatRange(1),
    help="Seconds per load level (25/50/75/100% of the maximum, and 3,000 commands/s).",
)
@click.option(
    "--transaction-max-s",
    type=click.FloatRange(0.001, 60),
    help="OUTBID_TRANSACTION_MAX_S for the workers and the ceiling [from the environment].",
)
@click.option(
    "--consume-batch",
    type=click.IntRange(1, 100_000),
    help="OUTBID_CONSUME_BATCH for the workers and the ceiling [from the environment].",
)
@click.option(
    "--redis/--no-redis", default=True, show_default=True, help="Workers write the read model."
)
@click.option("--keep-topics", is_flag=True, help="Leave the run's topics on shared servers.")
@click.option(
    "--partition-verification",
    type=click.Choice(["broker", "off"]),
    default="broker",
    show_default=True,
    help="An experiment: 'off' turns the brokers' transaction.partition.verification.enable off "
    "for the run (and back after) to show what it costs. Never a setting to run with: it "
    "guards against hanging transactions (bench/verification.py).",
)
def throughput_command(
    quick: bool,
    json_file: Path | None,
    plot_file: Path | None,
    commands: int | None,
    ceiling_commands: int | None,
    auctions: int | None,
    auction_scales: str | None,
    worker_counts: str | None,
    repeats: int | None,
    latency_seconds: float | None,
    transaction_max_s: float | None,
    consume_batch: int | None,
    redis: bool,
    keep_topics: bool,
    partition_verification: str,
) -> None:
    """Ceiling vs. engine throughput, latency under load, memory, auction scaling."""
    spec = BenchSpec.quick() if quick else BenchSpec()
    overrides: dict[str, Any] = {
        "commands": commands,
        "ceiling_commands": ceiling_commands,
        "auctions": auctions,
        "scales": comma_ints(auction_scales) if auction_scales else None,
        "workers": comma_ints(worker_counts) if worker_counts else None,
        "repeats": repeats,
        "latency_seconds": latency_seconds,
    }
    spec = replace(spec, **{k: v for k, v in overrides.items() if v is not None})
    if 1 not in spec.workers:
        raise click.BadParameter("--workers must include 1 (the ratio and latency use it)")
    settings = get_settings()
    if plot_file is None and json_file is not None:
        plot_file = json_file.with_suffix(".png")
    console = Console(stderr=True)
    machine = stack.machine_info()
    source = stack.source_revision()
    # A plain SIGTERM would skip the clean-up below and leave the private Kafka, Redis and the
    # workers running (they live in their own sessions): turn it into the Ctrl-C path.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with tempfile.TemporaryDirectory(prefix="outbid-bench-") as scratch:
            root = Path(scratch)
            console.print("[bold]outbid bench throughput[/]: servers")
            with stack.servers(root, settings.kafka_heap) as servers:
                where = "a private Kafka + Redis" if servers.private else "the given servers"
                console.print(f"Kafka {servers.kafka}, Redis {servers.redis} ({where})")
                ctx = phases.Context.create(
                    settings,
                    servers,
                    root,
                    transaction_max_s=transaction_max_s or settings.transaction_max_s,
                    consume_batch=consume_batch or settings.consume_batch,
                    redis=redis,
                    keep_topics=keep_topics,
                )
                if partition_verification == "off" and not servers.private:
                    console.print(
                        "[bold]Experiment[/]: the given brokers' partition verification is off "
                        "for this run (it is put back after)"
                    )
                with _verification(ctx.settings, partition_verification) as verification:
                    results = _measure(ctx, spec, console)
    except KafkaException as exc:
        raise BenchError(f"Kafka failed during the benchmark: {exc.args[0]}") from exc
    except KeyboardInterrupt:
        raise click.Abort from None
    machine["load_avg_end"] = stack.load_average()
    report = build_report(
        results,
        base_auctions=spec.auctions,
        machine=machine,
        source=source,
        config={
            "quick": quick,
            **_spec_config(spec),
            **_settings_config(ctx.settings),
            "servers": "private" if servers.private else "given",
            "partition_verification": verification,
            "brokers": 1 if servers.private else None,
        },
    )
    _summary(console, report)
    if json_file:
        json_file.parent.mkdir(parents=True, exist_ok=True)
        json_file.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
        console.print(f"JSON: {json_file}")
    if plot_file:
        from bench.throughput_plot import plot  # noqa: PLC0415 - matplotlib is slow to import

        plot(report, plot_file)
        console.print(f"plot: {plot_file}")


def _spec_config(spec: BenchSpec) -> dict[str, Any]:
    return {
        "commands": spec.commands,
        "ceiling_commands": spec.ceiling_commands,
        "auctions": spec.auctions,
        "auction_scales": list(spec.scales),
        "workers": list(spec.workers),
        "repeats": spec.repeats,
        "latency_seconds": spec.latency_seconds,
        "steady_rate_per_s": STEADY_RATE,
    }


def _settings_config(settings: Settings) -> dict[str, Any]:
    """The settings the workers ran with (the bench's own, and what they inherit unchanged)."""
    return {
        "transaction_max_s": settings.transaction_max_s,
        "consume_batch": settings.consume_batch,
        "cache_auctions": settings.cache_auctions,
        "table_cache_mb": settings.table_cache_mb,
        "recent_commands": settings.recent_commands,
        "aggregate_snapshot_every": settings.aggregate_snapshot_every,
        "snapshot_interval_s": settings.snapshot_interval_s,
        "snapshot_every_writes": settings.snapshot_every_writes,
        "session_timeout_s": settings.session_timeout_s,
        "redis": settings.redis_enabled,
        "partitions": load_topics(settings.topics_file).partitions(COMMANDS),
    }


@contextlib.contextmanager
def _verification(settings: Settings, wanted: str) -> Iterator[list[str]]:
    """The brokers' partition verification for the run: as they have it, or off (then restored).
    Yields what each broker reports, which the JSON records."""
    cluster = Cluster(AdminClient(settings.kafka_client_config()))
    if wanted == "broker":
        try:
            found = cluster.effective()
        except KafkaException:  # not allowed to describe the brokers: measure anyway
            found = ["unknown"]
        yield found
        return
    cluster.read()
    cluster.set("false")
    try:
        yield cluster.effective()
    finally:
        cluster.restore()


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _measure(ctx: phases.Context, spec: BenchSpec, console: Console) -> Results:
    results = Results()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:

        def say(line: str) -> None:
            bar.console.print(line)

        def run(
            label: str, workers: int, auctions: int, scale: int, into: list[PipelineRun]
        ) -> None:
            what = f"{workers} worker(s), {auctions:,} auctions" + (
                " (warm-up, not counted)" if into is results.warmup else ""
            )
            task = bar.add_task(what, total=spec.commands)

            def tick(done: int, total: int) -> None:
                bar.update(task, completed=max(0, done), total=total)

            into.append(
                phases.pipeline(
                    ctx, label, workers, auctions, spec.commands, say, tick, scale=scale
                )
            )
            bar.update(task, completed=spec.commands)

        for r in range(spec.repeats):
            results.ceiling += phases.ceiling(ctx, f"ceil{r}", spec.ceiling_commands, say)
        run("warmup", 1, spec.auctions, 1, results.warmup)
        for r in range(spec.repeats):  # interleaved: a drift of the machine hits every count
            for workers in spec.workers:
                run(f"w{workers}r{r}", workers, spec.auctions, 1, results.pipeline)
        one = median_or_none(
            r.cmds_per_s for r in results.pipeline if r.workers == 1 and r.auctions == spec.auctions
        )
        if not one:
            raise BenchError("the 1-worker run processed nothing; see its worker logs")
        for scale in spec.scales:
            if scale != 1:  # the 1-worker runs above are the 1x point
                run(f"a{scale}", 1, spec.auctions * scale, scale, results.pipeline)
        started = time.perf_counter()
        results.latency, results.latency_worker_rss_mb = phases.latency(
            ctx, one, spec.auctions, spec.latency_seconds, say
        )
        say(f"latency levels done in {time.perf_counter() - started:.0f}s")
    return results


def _summary(console: Console, report: dict[str, Any]) -> None:
    source = report["source"]
    commit = (source.get("commit") or "unknown")[:12] + (" (dirty)" if source.get("dirty") else "")
    title = f"outbid bench throughput ({report['guarantee']}, {commit})"
    if "false" in report["config"].get("partition_verification", []):
        title += ", EXPERIMENT: the brokers' partition verification off"
    table = Table(title=title)
    table.add_column("measure")
    table.add_column("value", justify="right")
    steady = report["steady_rate_latency"]
    rows = [
        (
            "ceiling, transactional / plain (cmd/s)",
            f"{report['ceiling_cmds_per_s']} / {report['ceiling_non_transactional_cmds_per_s']}",
        ),
        ("1 worker (cmd/s, steady)", report["pipeline_cmds_per_s"]),
        ("2 workers (cmd/s, steady)", report["pipeline_2_workers_cmds_per_s"]),
        ("2 workers / 1 worker", report["ratio_2_to_1_workers"]),
        ("2 workers: the busier one's share of the commands", report["two_workers_busiest_share"]),
        *(
            (
                f"CPU per command, {n} worker(s): workers / broker (µs)",
                f"{c['workers']} / {c['broker']}",
            )
            for n, c in report["cpu_us_per_command"].items()
        ),
        ("1 worker / ceiling", report["ratio"]),
        (
            "p50 / p99 / p999 at 50% of max (ms)",
            f"{report['p50_ms']} / {report['p99_ms']} / {report['p999_ms']}",
        ),
        (
            f"p50 / p99 / p999 at {steady['offered_per_s']}/s (ms)",
            f"{steady['p50_ms']} / {steady['p99_ms']} / {steady['p999_ms']}",
        ),
        ("peak RSS (MiB)", report["worker_peak_rss_mb"]),
        (
            "auctions: cmd/s (vs 1x)",
            ", ".join(
                f"{row['auctions']:,}: {row['cmds_per_s']} ({row['vs_1x']})"
                for row in report["auction_scaling"]
            ),
        ),
        (
            "targets met",
            ", ".join(
                f"{k.removesuffix('_met')}={v}"
                for k, v in report["targets"].items()
                if k.endswith("_met")
            ),
        ),
    ]
    for label, value in rows:
        table.add_row(label, "-" if value is None else str(value))
    console.print(table)
    console.print(
        f"load average start -> end: {report['machine']['load_avg_start']} -> "
        f"{report['machine']['load_avg_end']}"
    )
