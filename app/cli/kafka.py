"""`outbid kafka TOOL [ARGS...]`: the real Apache Kafka CLI from the Maven jars."""

from __future__ import annotations

import sys

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
    "With OUTBID_KAFKA_SECURITY_PROTOCOL other than PLAINTEXT, the tool also gets a generated "
    "client properties file (--command-config, or --producer.config / --consumer.config for the "
    "console tools; mode 0600, deleted when it ends) with outbid's Kafka security settings. "
    "Tools: " + ", ".join(sorted(tools.TOOLS)) + ".",
    short_help="Run an Apache Kafka CLI tool (kafka-topics, kafka-console-producer, ...).",
)
@click.argument("tool")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def kafka(tool: str, args: tuple[str, ...]) -> None:
    from app.kafka_config import write_command_config  # noqa: PLC0415
    from app.settings import get_settings  # noqa: PLC0415

    config = None
    if tools.config_option(tool) is not None:
        config = write_command_config(get_settings().kafka_client_config())
    if config is None:  # PLAINTEXT: the tool replaces this process, as it always did
        tools.exec_tool(tool, args)
        return
    try:
        code = tools.run_tool(tool, args, config)
    finally:
        config.unlink(missing_ok=True)
    sys.exit(code)
