"""`outbid dev up|down|status`: the native stack for machines without Docker."""

from __future__ import annotations

import json
import shlex

import click

from app.devstack import stack
from app.devstack.redis import redacted
from app.devstack.security import SecureCluster
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
@click.option(
    "--secure",
    is_flag=True,
    help="SASL_SSL (SCRAM-SHA-512) only, TLS certificates and passwords generated into the state "
    "dir, the StandardAuthorizer with infra/kafka/acls.yaml; prints each principal's settings.",
)
def up(
    brokers: int, workers: int, kafka_port: int | None, redis_port: int | None, secure: bool
) -> None:
    """Bring the stack up and wait until every part answers."""
    settings = get_settings()
    with click.progressbar(length=1, label="starting Kafka and Redis") as bar:
        state = stack.up(
            settings, brokers=brokers, kafka_port=kafka_port, redis_port=redis_port, secure=secure
        )
        bar.update(1)
    if state.secure or workers:
        from app.devstack.security import apply_acls  # noqa: PLC0415
        from app.topics import admin, load_topics  # noqa: PLC0415

        config = stack.admin_config(settings, state)
        spec = load_topics(settings.topics_file)  # workers need their topics: apply them first
        client = admin.admin_client(config)
        admin.reconcile(spec, client, config, settings.topic_prefix)
        if state.secure:
            apply_acls(client, settings.topic_prefix)
    if workers:
        from app.devstack import workers as worker_procs  # noqa: PLC0415

        with click.progressbar(length=workers, label=f"starting {workers} worker(s)") as bar:
            state = worker_procs.ensure(settings, state, workers)
            bar.update(workers)
    click.echo(f"kafka:   {state.kafka}{' (external)' if state.kafka_external else ''}")
    click.echo(f"redis:   {redacted(state.redis)}{' (external)' if state.redis_external else ''}")
    for worker in state.workers:
        click.echo(f"worker:  {worker['url']}")
    if state.secure:
        _print_principals(stack.security(settings))
    click.echo("stop with: outbid dev down")


def _print_principals(secured: SecureCluster) -> None:
    """How to be each principal: settings naming the password file, never a password."""
    click.echo("\nSASL_SSL only (no PLAINTEXT listener); ACLs from infra/kafka/acls.yaml.")
    click.echo("Export one principal's settings before running outbid (docs/security.md):")
    for principal, role in (
        ("worker", "workers (faust -A app worker); `outbid dev up --workers` uses it"),
        ("ingest", "command writers: outbid produce/loadgen, outbid kafka kafka-console-producer"),
        ("reader", "outbid verify, outbid rebuild, downstream consumers"),
        ("admin", "super user: outbid topics apply, kafka-acls, kafka-configs"),
    ):
        click.echo(f"  # {principal}: {role}")
        for name, value in secured.env(principal).items():
            click.echo(f"  export {name}={shlex.quote(value)}")


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
@click.option(
    "--s3/--no-s3",
    default=True,
    show_default=True,
    help="Also build SeaweedFS (the S3-compatible snapshot store of the tests) from its Go module.",
)
def fetch(s3: bool) -> None:
    """Resolve the Apache Kafka jars from Maven Central (and build SeaweedFS) into the cache, once."""
    from app.devstack import jars  # noqa: PLC0415

    click.echo(f"kafka jars: {jars.ensure_jars()}")
    if s3:
        from app.devstack import seaweedfs  # noqa: PLC0415

        click.echo(f"seaweedfs:  {seaweedfs.weed_binary()}")
