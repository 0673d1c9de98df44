"""`outbid dev up|down|status`: the native stack for machines without Docker."""

from __future__ import annotations

import json

import click

from app.devstack import stack
from app.devstack.redis import redacted
from app.settings import get_settings


@click.group()
def dev() -> None:
    """Start and stop a local Kafka (KRaft) + Redis (+ workers)."""


@dev.command()
@click.option(
    "--brokers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 5),
    help="Kafka nodes (KRaft combined mode, one controller quorum).",
)
@click.option(
    "--workers",
    default=0,
    show_default=True,
    type=click.IntRange(0, 16),
    help="outbid worker processes (`faust -A app worker`).",
)
@click.option(
    "--kafka-port",
    default=None,
    type=click.IntRange(1024, 65000),
    help="Client port of the first node (default 9092, or free ports when taken); node i uses "
    "port+2i (and port+2i+1 for its controller).",
)
@click.option(
    "--redis-port",
    default=None,
    type=click.IntRange(1024, 65535),
    help="Default 6379, or a free port when 6379 is taken.",
)
def up(brokers: int, workers: int, kafka_port: int | None, redis_port: int | None) -> None:
    """Bring the stack up and wait until every part answers."""
    settings = get_settings()
    with click.progressbar(length=1, label="starting Kafka and Redis") as bar:
        state = stack.up(settings, brokers=brokers, kafka_port=kafka_port, redis_port=redis_port)
        bar.update(1)
    if workers:
        from app.devstack import workers as worker_procs  # noqa: PLC0415
        from app.topics import admin, load_topics  # noqa: PLC0415

        spec = load_topics(settings.topics_file)  # workers need their topics: apply them first
        client = admin.admin_client(state.kafka)
        plan = admin.plan(spec, client, state.kafka, settings.topic_prefix)
        admin.apply(plan, spec, client, settings.topic_prefix)
        with click.progressbar(length=workers, label=f"starting {workers} worker(s)") as bar:
            state = worker_procs.ensure(settings, state, workers)
            bar.update(workers)
    click.echo(f"kafka:   {state.kafka}{' (external)' if state.kafka_external else ''}")
    click.echo(f"redis:   {redacted(state.redis)}{' (external)' if state.redis_external else ''}")
    for worker in state.workers:
        click.echo(f"worker:  {worker['url']}")
    click.echo("stop with: outbid dev down")


@dev.command()
@click.option(
    "--wipe",
    is_flag=True,
    help="Also delete the stack's data (topics, Redis data, worker state, table snapshots).",
)
def down(wipe: bool) -> None:
    """Stop every process `outbid dev up` started."""
    stopped = stack.down(get_settings(), wipe=wipe)
    for what in stopped:
        click.echo(f"stopped {what}")
    if not stopped:
        click.echo("nothing was running")


@dev.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool) -> None:
    """Show where the stack's servers and workers are."""
    info = stack.status(get_settings())
    if info.get("redis"):  # REDIS_URL may hold a password: never printed
        info["redis"] = redacted(str(info["redis"]))
    if as_json:
        click.echo(json.dumps(info))
        return
    click.echo(f"running: {'yes' if info['running'] else 'no'}")
    click.echo(f"kafka:   {info['kafka'] or '-'}")
    click.echo(f"redis:   {info['redis'] or '-'}")
    for url in info["workers"]:
        click.echo(f"worker:  {url}")
    for name, proc in info.get("processes", {}).items():
        click.echo(f"  {name:10} pid {proc['pid']:>7}  {'up' if proc['alive'] else 'DOWN'}")


@dev.command()
def fetch() -> None:
    """Resolve the Apache Kafka jars from Maven Central into the cache (once)."""
    from app.devstack import jars  # noqa: PLC0415

    click.echo(f"kafka jars: {jars.ensure_jars()}")
