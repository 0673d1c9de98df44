"""`outbid bench throughput`: how fast the pipeline is on this machine, against what ceiling.

One run measures, on the same broker and with the same commands (app/loadgen.py's generator):
1. the ceiling: a minimal confluent-kafka consume -> decode -> encode -> produce loop, transactional
   like the pipeline (and once without transactions);
2. the pipeline: 1 and 2 `faust -A app worker` processes, commands fully processed per second
   (their offsets committed with their events, and those events committed by the projection);
3. end-to-end latency at 25/50/75/100% of that maximum;
4. each worker's peak RSS, and throughput with 10x and 100x as many auctions.
Medians of the repeats go first in the JSON, every raw number after them. See docs/benchmarks.md.
"""

from __future__ import annotations

import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import click
import orjson
from confluent_kafka import KafkaException
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.errors import OutbidError
HOTPATH_COMMIT_INTERVAL_S = 0.05
from app.settings import get_settings
from bench import throughput_phases as phases
from bench import throughput_stack as stack
from bench.throughput_stats import Results, build_report, median_or_none


class BenchError(OutbidError):
    """The benchmark could not complete; the message says which measurement and why."""


ENGINES = ("faust", "hotpath")  # the Faust workers, and app/hotpath's confluent-kafka loop


@dataclass(frozen=True, slots=True)
class BenchSpec:
    commands: int = 30_000  # timed commands per pipeline run
    ceiling_commands: int = 100_000
    auctions: int = 1_000  # loadgen's default
    scales: tuple[int, ...] = (1, 10, 100)
    workers: tuple[int, ...] = (1, 2)
    repeats: int = 3
    latency_seconds: float = 30.0
    engines: tuple[str, ...] = ENGINES

    @classmethod
    def quick(cls) -> BenchSpec:
        """Under 5 minutes on 2 cores: fewer commands, 2 repeats, no 100x auctions."""
        return cls(
            commands=8_000,
            ceiling_commands=30_000,
            scales=(1, 10),
            repeats=2,
            latency_seconds=8.0,
        )


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
@click.option("--commands", type=click.IntRange(100), help="Timed commands per pipeline run.")
@click.option("--ceiling-commands", type=click.IntRange(100))
@click.option("--auctions", type=click.IntRange(1), help="Auctions of the 1x runs [1000].")
@click.option("--auction-scales", help="Auction multipliers, e.g. 1,10,100.")
@click.option("--workers", "worker_counts", help="Worker counts to measure, e.g. 1,2.")
@click.option("--repeats", type=click.IntRange(1, 20), help="Repeats of ceiling and pipeline.")
@click.option("--latency-seconds", type=click.FloatRange(1), help="Seconds per load level.")
@click.option(
    "--commit-interval",
    type=click.FloatRange(0.01, 60),
    help="OUTBID_COMMIT_INTERVAL_S for workers and ceiling [from the environment, 1.0].",
)
@click.option(
    "--redis/--no-redis", default=True, show_default=True, help="Workers write the read model."
)
@click.option(
    "--engines",
    default=",".join(ENGINES),
    show_default=True,
    help="What processes the commands: faust (workers), hotpath (outbid hotpath), or both.",
)
@click.option("--keep-topics", is_flag=True, help="Leave the run's topics on shared servers.")
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
    commit_interval: float | None,
    redis: bool,
    engines: str,
    keep_topics: bool,
) -> None:
    """Ceiling vs. pipeline throughput, latency under load, memory, auction scaling."""
    spec = BenchSpec.quick() if quick else BenchSpec()
    overrides: dict[str, Any] = {
        "commands": commands,
        "ceiling_commands": ceiling_commands,
        "auctions": auctions,
        "scales": comma_ints(auction_scales) if auction_scales else None,
        "workers": comma_ints(worker_counts) if worker_counts else None,
        "repeats": repeats,
        "latency_seconds": latency_seconds,
        "engines": _engines(engines),
    }
    spec = replace(spec, **{k: v for k, v in overrides.items() if v is not None})
    if 1 not in spec.workers:
        raise click.BadParameter("--workers must include 1 (the ratio and latency use it)")
    settings = get_settings()
    interval = commit_interval or settings.commit_interval_s
    if plot_file is None and json_file is not None:
        plot_file = json_file.with_suffix(".png")
    console = Console(stderr=True)
    machine = stack.machine_info()
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
                    commit_interval_s=interval,
                    redis=redis,
                    keep_topics=keep_topics,
                )
                results = _measure(ctx, spec, console)
    except KafkaException as exc:
        raise BenchError(f"Kafka failed during the benchmark: {exc.args[0]}") from exc
    except KeyboardInterrupt:
        raise click.Abort from None
    machine["load_avg_end"] = stack.load_average()
    report = build_report(
        results,
        base_auctions=spec.auctions,
        guarantee=settings.processing_guarantee,
        machine=machine,
        config={
            "quick": quick,
            "commands": spec.commands,
            "ceiling_commands": spec.ceiling_commands,
            "auctions": spec.auctions,
            "auction_scales": list(spec.scales),
            "workers": list(spec.workers),
            "repeats": spec.repeats,
            "latency_seconds": spec.latency_seconds,
            "engines": list(spec.engines),
            "commit_interval_s": interval,
            "hotpath_commit_interval_s": HOTPATH_COMMIT_INTERVAL_S,
            "redis": redis,
            "servers": "private" if servers.private else "given",
            "brokers": 1 if servers.private else None,
            "partitions": 8,
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


def _engines(value: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    unknown = [e for e in chosen if e not in ENGINES]
    if unknown or not chosen:
        raise click.BadParameter(f"{value!r}: choose from {', '.join(ENGINES)} (comma-separated)")
    return chosen


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

        def run(label: str, engine: str, workers: int, auctions: int, scale: int) -> None:
            task = bar.add_task(
                f"{engine}: {workers} process(es), {auctions:,} auctions", total=spec.commands
            )

            def tick(done: int, total: int) -> None:
                bar.update(task, completed=max(0, done), total=total)

            results.pipeline.append(
                phases.pipeline(
                    ctx,
                    label,
                    workers,
                    auctions,
                    spec.commands,
                    say,
                    tick,
                    scale=scale,
                    engine=engine,
                )
            )
            bar.update(task, completed=spec.commands)

        for r in range(spec.repeats):
            results.ceiling += phases.ceiling(ctx, f"ceil{r}", spec.ceiling_commands, say)
        for engine in spec.engines:
            tag = engine[0]  # f or h: topic prefixes stay short
            for workers in spec.workers:
                for r in range(spec.repeats):
                    run(f"{tag}w{workers}r{r}", engine, workers, spec.auctions, 1)
            one = median_or_none(
                r.cmds_per_s
                for r in results.pipeline
                if r.engine == engine and r.workers == 1 and r.auctions == spec.auctions
            )
            if not one:
                raise BenchError(f"the 1-process {engine} run processed nothing; see its logs")
            for scale in spec.scales:
                if scale != 1:  # the 1-process runs above are the 1x point
                    run(f"{tag}a{scale}", engine, 1, spec.auctions * scale, scale)
            started = time.perf_counter()
            levels, rss = phases.latency(
                ctx, one, spec.auctions, spec.latency_seconds, say, engine=engine
            )
            if engine == "hotpath":
                results.hotpath_latency, results.hotpath_latency_rss_mb = levels, rss
            else:
                results.latency, results.latency_worker_rss_mb = levels, rss
            say(f"{engine} latency levels done in {time.perf_counter() - started:.0f}s")
    return results


def _summary(console: Console, report: dict[str, Any]) -> None:
    table = Table(title=f"outbid bench throughput ({report['guarantee']})")
    table.add_column("measure")
    sections = {"faust workers": report}
    if report.get("hotpath"):
        sections["outbid hotpath"] = report["hotpath"]
    for name in sections:
        table.add_column(name, justify="right")
    table.add_row(
        "ceiling, transactional / plain (cmd/s)",
        f"{report['ceiling_cmds_per_s']} / {report['ceiling_non_transactional_cmds_per_s']}",
    )
    rows: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
        ("1 process (cmd/s)", lambda r: r["pipeline_cmds_per_s"]),
        ("2 processes (cmd/s)", lambda r: r["pipeline_2_workers_cmds_per_s"]),
        ("ratio to the ceiling", lambda r: r["ratio"]),
        (
            "p50 / p99 / p999 at 50% (ms)",
            lambda r: f"{r['p50_ms']} / {r['p99_ms']} / {r['p999_ms']}",
        ),
        ("peak RSS (MiB)", lambda r: r["worker_peak_rss_mb"]),
        (
            "auctions: cmd/s (vs 1x)",
            lambda r: ", ".join(
                f"{row['auctions']:,}: {row['cmds_per_s']} ({row['vs_1x']})"
                for row in r["auction_scaling"]
            ),
        ),
        (
            "targets met",
            lambda r: ", ".join(
                f"{k.removesuffix('_met')}={v}"
                for k, v in r["targets"].items()
                if k.endswith("_met")
            ),
        ),
    ]
    for label, pick in rows:
        values = [pick(section) for section in sections.values()]
        table.add_row(label, *("-" if v is None else str(v) for v in values))
    console.print(table)
    console.print(
        f"load average start -> end: {report['machine']['load_avg_start']} -> "
        f"{report['machine']['load_avg_end']}"
    )
