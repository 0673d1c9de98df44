"""`outbid chaos`: the fault-tolerance run (kill -9 workers and a broker under load, then verify)."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import click
import orjson

from app import chaos
from app.settings import get_settings


@click.command(name="chaos")
@click.option("--commands", default=100_000, show_default=True, type=click.IntRange(1))
@click.option("--rate", default=2_000.0, show_default=True, type=click.FloatRange(1))
@click.option("--auctions", default=1_000, show_default=True, type=click.IntRange(1))
@click.option("--workers", default=3, show_default=True, type=click.IntRange(1, 8))
@click.option("--brokers", default=3, show_default=True, type=click.IntRange(1, 5))
@click.option(
    "--kill-every", default=6.0, show_default=True, type=click.FloatRange(1), help="Seconds."
)
@click.option("--seed", default=1, show_default=True)
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path))
def chaos_command(
    commands: int,
    rate: float,
    auctions: int,
    workers: int,
    brokers: int,
    kill_every: float,
    seed: int,
    json_file: Path | None,
) -> None:
    """Run the chaos test on loopback in a scratch folder; exit 0 only if `verify` passes."""
    spec = chaos.ChaosSpec(
        commands=commands,
        rate=rate,
        auctions=auctions,
        workers=workers,
        brokers=brokers,
        kill_every_s=kill_every,
        seed=seed,
    )
    settings = get_settings().model_copy(update={"topic_prefix": f"chaos{int(time.time())}."})
    with tempfile.TemporaryDirectory(prefix="outbid-chaos-") as root:
        result = chaos.run(spec, settings, Path(root), say=lambda line: click.echo(line, err=True))
    summary = result.as_json()
    click.echo(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
    if json_file:
        json_file.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    sys.exit(0 if summary["verify_ok"] else 1)
