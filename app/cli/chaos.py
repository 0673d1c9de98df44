"""`outbid chaos`: the fault-tolerance run (kill -9 workers and a broker under load, then verify)."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import orjson
from confluent_kafka import KafkaException

from app import chaos
from app.errors import KafkaUnavailableError
from app.settings import REPO_ROOT, get_settings


@click.command(name="chaos")
@click.option("--commands", default=100_000, show_default=True, type=click.IntRange(1))
@click.option("--rate", default=2_000.0, show_default=True, type=click.FloatRange(1))
@click.option("--auctions", default=1_000, show_default=True, type=click.IntRange(1))
@click.option("--workers", default=3, show_default=True, type=click.IntRange(1, 8))
@click.option("--brokers", default=3, show_default=True, type=click.IntRange(1, 5))
@click.option(
    "--kill-every",
    default=6.0,
    show_default=True,
    type=click.FloatRange(1),
    help="Seconds between worker kills, on average.",
)
@click.option(
    "--catch-up-timeout",
    default=600.0,
    show_default=True,
    type=click.FloatRange(10),
    help="Seconds the workers get to process what is left when the load stops.",
)
@click.option(
    "--seed",
    type=click.IntRange(0),
    help="Repeat a run's kill schedule and commands (printed at its start; random by default).",
)
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
    catch_up_timeout: float,
    seed: int | None,
    json_file: Path | None,
    keep: bool,
) -> None:
    """Run the chaos test on loopback in a scratch folder; exit 0 only if `verify` passes, no
    broker has a hanging transaction and the group has no lag left."""
    spec = chaos.ChaosSpec(
        commands=commands,
        rate=rate,
        auctions=auctions,
        workers=workers,
        brokers=brokers,
        kill_every_s=kill_every,
        catch_up_timeout_s=catch_up_timeout,
        seed=secrets.randbelow(1_000_000) if seed is None else seed,
    )
    source = _source_revision()
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
    summary = orjson.dumps({"source": source, **result.as_json()}, option=orjson.OPT_INDENT_2)
    click.echo(summary.decode())
    if json_file:
        json_file.write_bytes(summary + b"\n")
    sys.exit(0 if result.ok else 1)


def _source_revision() -> dict[str, object]:
    """The git commit that ran (`git rev-parse HEAD`) and whether the checkout differed from it
    (changed or untracked files: what ran is then not exactly that commit)."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}  # not a git checkout (the worker image)
