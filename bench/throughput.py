"""`outbid bench throughput` (work in progress)."""

from __future__ import annotations

import click


@click.command()
def throughput_command() -> None:
    """Not built yet."""
    raise click.ClickException("outbid bench throughput is not built yet")
