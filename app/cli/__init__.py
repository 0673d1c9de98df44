"""The `outbid` command line. Each sub-module holds one command group.

Commands are imported on first use, by name: `outbid topics apply` in the worker image must not
import the benchmarks (bench/ is not in the image) or the dev stack, and `outbid --help` lists
every command from the table below without importing any of them.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import click
from click.utils import make_default_short_help

from app.errors import OutbidError


@dataclass(frozen=True, slots=True)
class Lazy:
    """Where a command lives, and the line a group's `--help` shows for it without importing it."""

    module: str
    attribute: str
    short_help: str


class LazyGroup(click.Group):
    """A click group whose commands are imported the first time one of them is looked up."""

    def __init__(self, *args: Any, lazy: Mapping[str, Lazy], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in self.lazy:
            command = self.load(cmd_name)
            self.add_command(command, cmd_name)
        return command

    def load(self, name: str) -> click.Command:
        entry = self.lazy[name]
        command = getattr(importlib.import_module(entry.module), entry.attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{entry.module}.{entry.attribute} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's listing, with each lazy command's short help taken from the table."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in self.lazy:
                rows.append((name, make_default_short_help(self.lazy[name].short_help, limit)))
                continue
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


COMMANDS = {
    "bench": Lazy("app.cli.bench", "bench", "Measure the pipeline (from a source checkout only)."),
    "chaos": Lazy("app.cli.chaos", "chaos_command", "Kill workers and brokers under load; verify."),
    "demo": Lazy("app.cli.demo", "demo", "Run the pipeline locally, show the highest bids."),
    "dev": Lazy("app.cli.dev", "dev", "Start and stop a local Kafka (KRaft) + Redis (+ workers)."),
    "dlq": Lazy("app.cli.dlq", "dlq", "Inspect and re-drive bid-commands-dlq."),
    "kafka": Lazy("app.cli.kafka", "kafka", "Run an Apache Kafka CLI tool (kafka-topics, ...)."),
    "loadgen": Lazy("app.cli.loadgen", "loadgen_command", "Produce commands at a set rate."),
    "produce": Lazy("app.cli.produce", "produce", "Send JSON-lines commands from a file or stdin."),
    "rebuild": Lazy("app.cli.rebuild", "rebuild", "Rebuild a projection from the event log."),
    "sample": Lazy("app.cli.produce", "sample", "Print a reproducible sample auction stream."),
    "tokens": Lazy("app.cli.tokens", "tokens", "Create, list and revoke HTTP bearer tokens."),
    "topics": Lazy("app.cli.topics", "topics", "Reconcile Kafka topics with topics.yaml."),
    "verify": Lazy("app.cli.verify", "verify", "Audit the topics: nothing lost or applied twice."),
}


class _Main(LazyGroup):
    """Turns every OutbidError into one clear line on stderr and exit code 2, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OutbidError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(2)


@click.group(cls=_Main, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log debug details.")
def main(verbose: bool) -> None:
    """outbid: event-sourced auction bidding on Kafka."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # librdkafka reports every refused connection; our own errors say what matters.
    logging.getLogger("librdkafka").setLevel(logging.DEBUG if verbose else logging.CRITICAL)
