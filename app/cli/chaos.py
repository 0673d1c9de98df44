"""`outbid chaos`: the fault-tolerance run (kill -9 workers and a broker under load, then verify)."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import click
import orjson
from confluent_kafka import KafkaException

from app import chaos
from app.errors import KafkaUnavailableError
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
@click.option(
    "--keep", is_flag=True, help="Keep the Kafka data and worker logs (for a post-mortem)."
)
def chaos_command(
    commands: int,
    rate: float,
    auctions: int,
    workers: int,
    brokers: int,
    kill_every: float,
    seed: int,
    json_file: Path | None,
    keep: bool,
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
    root = Path(tempfile.mkdtemp(prefix="outbid-chaos-"))
    try:
        result = chaos.run(spec, settings, root, say=lambda line: click.echo(line, err=True))
    except KafkaException as exc:
        raise KafkaUnavailableError(f"Kafka failed during the chaos run: {exc.args[0]}") from exc
    finally:
        if keep:
            click.echo(f"kept the run's data and worker logs in {root}", err=True)
        else:
            shutil.rmtree(root, ignore_errors=True)
    summary = result.as_json()
    click.echo(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
    if json_file:
        json_file.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    sys.exit(0 if summary["verify_ok"] else 1)
