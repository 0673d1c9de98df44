"""`outbid kafka TOOL [ARGS...]`: the real Apache Kafka CLI from the Maven jars."""

from __future__ import annotations

import click

from app.devstack import tools


@click.command(
    context_settings={
        "ignore_unknown_options": True,
        "allow_interspersed_args": False,
        "help_option_names": [],
    },
    help="Run Apache Kafka's command-line TOOL with ARGS passed through unchanged "
    "(e.g. `outbid kafka kafka-console-producer --bootstrap-server 127.0.0.1:9092 --topic bid-commands`). "
    "Tools: " + ", ".join(sorted(tools.TOOLS)) + ".",
    short_help="Run an Apache Kafka CLI tool (kafka-topics, kafka-console-producer, ...).",
)
@click.argument("tool")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def kafka(tool: str, args: tuple[str, ...]) -> None:
    tools.exec_tool(tool, args)
