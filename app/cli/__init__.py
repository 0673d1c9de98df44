"""The `outbid` command line. Each sub-module holds one command group."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from app.errors import OutbidError


class _Group(click.Group):
    """Turns every OutbidError into one clear line on stderr and exit code 2, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OutbidError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log debug details.")
def main(verbose: bool) -> None:
    """outbid: event-sourced auction bidding on Kafka."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # librdkafka reports every refused connection; our own errors say what matters.
    logging.getLogger("librdkafka").setLevel(logging.DEBUG if verbose else logging.CRITICAL)


def _register() -> None:
    from app.cli import (  # noqa: PLC0415
        bench,
        chaos,
        demo,
        dev,
        dlq,
        kafka,
        loadgen,
        produce,
        rebuild,
        topics,
        verify,
    )

    main.add_command(bench.bench)
    main.add_command(rebuild.rebuild)

    main.add_command(dlq.dlq)

    main.add_command(chaos.chaos_command)

    main.add_command(loadgen.loadgen_command, name="loadgen")

    main.add_command(verify.verify)

    main.add_command(demo.demo)

    main.add_command(produce.produce)
    main.add_command(produce.sample)
    main.add_command(dev.dev)
    main.add_command(topics.topics)
    main.add_command(kafka.kafka)


_register()
