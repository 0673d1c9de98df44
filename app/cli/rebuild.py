"""`outbid rebuild`: a projection rebuilt from the event log into a fresh table version."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from app import rebuild as rebuilding
from app.audit.reader import TopicReader
from app.settings import get_settings


@click.group()
def rebuild() -> None:
    """Rebuild a projection from the event log (optionally starting from snapshots)."""


@rebuild.command("highest-bids")
@click.option(
    "--from-snapshots/--from-scratch",
    default=True,
    show_default=True,
    help="Start each partition from its newest valid table snapshot, or fold all events.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory of the new table version (default: $OUTBID_STATE_DIR/rebuilds/highest_bids-<time>).",
)
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path))
def highest_bids(from_snapshots: bool, out: Path | None, json_file: Path | None) -> None:
    """Fold auction-events into a fresh highest_bids table and compare it with the live one.

    Exit 0 when every key equals the live projection (keys that are only ahead or behind
    because the system is still processing are counted, not failed); 1 on any difference.
    """
    settings = get_settings()
    out = out or settings.state_dir / "rebuilds" / f"highest_bids-{time.strftime('%Y%m%d-%H%M%S')}"
    reader = TopicReader(settings.kafka_client_config())
    console = Console(stderr=True)
    try:
        partitions = rebuilding.plan(settings, reader, from_snapshots=from_snapshots)
        total = sum(p.end_offset - p.start_offset for p in partitions)
        columns = (
            TextColumn("rebuilding highest_bids"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>9,.0f} events/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("rebuild", total=total, rate=0.0)
            started = time.perf_counter()
            done = 0

            def advance(count: int) -> None:
                nonlocal done
                done += count
                rate = done / max(1e-9, time.perf_counter() - started)
                bar.update(task, advance=count, rate=rate)

            report = rebuilding.rebuild(settings, reader, partitions, out, advance)
            bar.update(task, completed=total)
    finally:
        reader.close()
    table = Table(title=f"highest_bids rebuilt into {report.path}")
    for column in (
        "partition",
        "from",
        "events",
        "keys",
        "digest",
        "live digest",
        "equal",
        "in flight",
        "differ",
    ):
        table.add_column(column)
    for p in report.partitions:
        table.add_row(
            str(p.partition),
            f"snapshot@{p.start_offset}" if p.snapshot else "0",
            f"{p.events:,}",
            f"{p.keys:,}",
            p.digest[:8],
            p.live_digest[:8],
            f"{p.equal:,}",
            f"{p.live_ahead + p.live_behind:,}",
            f"[red]{len(p.differ)}[/]" if p.differ else "0",
        )
    out_console = Console()
    out_console.print(table)
    rate = report.events / max(report.seconds, 1e-9)
    out_console.print(
        f"{report.events:,} events folded in {report.seconds:.1f} s ({rate:,.0f}/s); "
        f"digest {report.digest}"
    )
    for p in report.partitions:
        for key in p.differ[:5]:
            out_console.print(f"[red]differs[/] partition {p.partition} key {key}", highlight=False)
    if json_file:
        json_file.write_bytes(
            orjson.dumps(report.as_json(), option=orjson.OPT_INDENT_2, default=str)
        )
    if report.differences:
        out_console.print("[red]the rebuilt projection differs from the live one[/]")
        sys.exit(1)
    out_console.print("[green]the rebuilt projection equals the live one[/]")
