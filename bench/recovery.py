"""`outbid bench recovery` (work in progress)."""

from __future__ import annotations

import click


@click.command()
def recovery_command() -> None:
    """Not built yet."""
    raise click.ClickException("outbid bench recovery is not built yet")
