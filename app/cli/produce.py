"""`outbid produce [FILE|-]` and `outbid sample`: commands onto bid-commands, keyed by auction id."""

from __future__ import annotations

import sys
from typing import IO

import click
import orjson

from app.domain import encode_command
from app.errors import InvalidMessage, KafkaUnavailableError
from app.producers import command_producer
from app.sample import sample_commands
from app.settings import get_settings
from app.topics.spec import COMMANDS


def _key(line: bytes) -> bytes | None:
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    auction_id = doc.get("auction_id") if isinstance(doc, dict) else None
    return auction_id.encode() if isinstance(auction_id, str) and auction_id else None


@click.command()
@click.argument("source", type=click.File("rb"), default="-")
@click.option(
    "--allow-invalid",
    is_flag=True,
    help="Send lines that are not valid commands too (they end in the dead-letter topic).",
)
def produce(source: IO[bytes], allow_invalid: bool) -> None:
    """Send JSON-lines commands from SOURCE (a file or - for stdin), each keyed by its auction_id."""
    from app.domain import decode_command  # noqa: PLC0415

    settings = get_settings()
    topic = settings.topic(COMMANDS)
    out = command_producer(settings.kafka_client_config(), **{"linger.ms": 5})
    sent = skipped = 0
    for number, raw in enumerate(source, start=1):
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            continue
        try:
            decode_command(line)
        except InvalidMessage as exc:
            if not allow_invalid:
                click.echo(f"line {number}: {exc.reason}: {exc.message} (not sent)", err=True)
                skipped += 1
                continue
        out.produce(topic, value=line, key=_key(line))
        out.poll(0)
        sent += 1
    if out.flush(30) > 0:
        raise KafkaUnavailableError(
            f"{len(out)} command(s) not acknowledged by Kafka at {settings.kafka_bootstrap_servers} within 30s"
        )
    click.echo(
        f"sent {sent} command(s) to {topic}"
        + (f", skipped {skipped} invalid line(s)" if skipped else "")
    )
    if skipped:
        sys.exit(1)


@click.command()
@click.option("--auctions", default=50, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option(
    "--bids",
    default=12,
    show_default=True,
    type=click.IntRange(0, 10_000),
    help="Bids per auction.",
)
@click.option("--seed", default=7, show_default=True)
@click.option(
    "--keyed",
    is_flag=True,
    help="Prefix each line with 'AUCTION_ID|' for kafka-console-producer parse.key.",
)
def sample(auctions: int, bids: int, seed: int, keyed: bool) -> None:
    """Print a reproducible sample auction stream as JSON lines."""
    for command in sample_commands(auctions, bids, seed):
        line = encode_command(command).decode()
        click.echo(f"{command.auction_id}|{line}" if keyed else line)
