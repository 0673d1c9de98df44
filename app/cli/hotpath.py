"""`outbid hotpath`: run the confluent-kafka hot path in place of the Faust workers."""

from __future__ import annotations

import signal
import socket
import time

import click
from confluent_kafka import KafkaException
from prometheus_client import start_http_server

from app.errors import KafkaUnavailableError
from app.hotpath import HotPath, Options
from app.hotpath.processor import DEFAULT_COMMIT_INTERVAL_S
from app.settings import get_settings


@click.command()
@click.option(
    "--instance",
    default=socket.gethostname,
    show_default="the host name",
    help="This process's stable name (its transactional id): one per process, the same after "
    "a restart so the new process fences the old one's open transaction at once.",
)
@click.option(
    "--commit-interval",
    default=DEFAULT_COMMIT_INTERVAL_S,
    show_default=True,
    type=click.FloatRange(0.001, 60),
    help="The longest a transaction stays open under a backlog (it commits sooner whenever "
    "the process has caught up with its input).",
)
@click.option("--batch", default=2_000, show_default=True, type=click.IntRange(1, 100_000))
@click.option(
    "--cache",
    default=20_000,
    show_default=True,
    type=click.IntRange(1),
    help="Decoded auctions kept in memory per partition.",
)
@click.option(
    "--metrics-port",
    default=0,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Serve Prometheus /metrics on this port (0: off).",
)
def hotpath(
    instance: str, commit_interval: float, batch: int, cache: int, metrics_port: int
) -> None:
    """Decide commands and project views in one confluent-kafka loop, exactly once.

    Same topics, records and consumer group as the Faust workers (stop them first): `outbid
    verify` audits it unchanged and Faust workers can take over where it stopped. Stop with
    Ctrl-C or SIGTERM; the open transaction commits on the way out.
    """
    settings = get_settings()
    options = Options(
        instance=instance,
        commit_interval_s=commit_interval,
        batch=batch,
        cache_size=cache,
        redis=settings.redis_enabled,
    )
    if metrics_port:
        start_http_server(metrics_port, addr=settings.web_bind)
    path = HotPath(settings, options)
    signal.signal(signal.SIGTERM, lambda *_: path.stop())
    signal.signal(signal.SIGINT, lambda *_: path.stop())
    click.echo(
        f"hotpath {instance}: {settings.kafka_bootstrap_servers}, group {path.group}, "
        f"transactions of at most {commit_interval * 1000:.0f} ms"
        + (f", metrics on :{metrics_port}" if metrics_port else ""),
        err=True,
    )
    started, done = time.monotonic(), 0

    def count(records: int) -> None:
        nonlocal done
        done += records

    try:
        path.run(on_batch=count)
    except KafkaException as exc:
        raise KafkaUnavailableError(f"Kafka failed: {exc.args[0]}") from exc
    click.echo(
        f"hotpath {instance}: stopped after {done:,} record(s) in "
        f"{time.monotonic() - started:.0f} s",
        err=True,
    )
