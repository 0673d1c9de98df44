"""`outbid loadgen`: drive the pipeline with a realistic, reproducible command stream."""

from __future__ import annotations

import time
from pathlib import Path

import click
import orjson
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from app import loadgen
from app.settings import get_settings
from app.topics.spec import COMMANDS


@click.command()
@click.option("--commands", default=10_000, show_default=True, type=click.IntRange(1))
@click.option(
    "--rate", default=0.0, show_default=True, type=click.FloatRange(0), help="Commands/s; 0 = max."
)
@click.option("--auctions", default=1_000, show_default=True, type=click.IntRange(1))
@click.option("--bidders", default=500, show_default=True, type=click.IntRange(1))
@click.option(
    "--skew", default=1.1, show_default=True, type=click.FloatRange(0), help="Zipf exponent."
)
@click.option("--duplicates", default=0.01, show_default=True, type=click.FloatRange(0, 0.5))
@click.option("--garbage", default=0.01, show_default=True, type=click.FloatRange(0, 0.5))
@click.option("--seed", default=1, show_default=True)
@click.option("--run-id", default=None, help="Auction id prefix (default: derived from the time).")
@click.option(
    "--json",
    "json_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report here.",
)
def loadgen_command(
    commands: int,
    rate: float,
    auctions: int,
    bidders: int,
    skew: float,
    duplicates: float,
    garbage: float,
    seed: int,
    run_id: str | None,
    json_file: Path | None,
) -> None:
    """Produce COMMANDS commands to bid-commands and report what was sent."""
    settings = get_settings()
    spec = loadgen.LoadSpec(
        commands=commands,
        rate=rate,
        auctions=auctions,
        bidders=bidders,
        skew=skew,
        duplicates=duplicates,
        garbage=garbage,
        seed=seed,
        run_id=run_id or f"L{int(time.time()) % 1_000_000}",
    )
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>8} cmd/s"),
        TimeRemainingColumn(),
    )
    with Progress(*columns) as bar:
        task = bar.add_task("sending", total=commands, rate="-")
        started = time.perf_counter()

        def tick(n: int) -> None:
            bar.advance(task, n)
            done = bar.tasks[0].completed
            bar.update(task, rate=f"{done / max(time.perf_counter() - started, 1e-6):,.0f}")

        report = loadgen.run(spec, settings.kafka_client_config(), settings.topic(COMMANDS), tick)
        bar.update(task, completed=report.total)
    summary = report.as_json()
    click.echo(
        f"sent {report.total} commands in {report.seconds:.1f}s ({summary['rate']} cmd/s): "
        + ", ".join(f"{k} {v}" for k, v in sorted(report.sent.items()))
    )
    if json_file:
        json_file.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
