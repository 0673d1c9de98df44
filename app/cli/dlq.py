"""`outbid dlq replay`: re-drive dead-lettered commands after fixing their cause."""

from __future__ import annotations

import click
from rich.progress import Progress

from app import dlq as dead_letters
from app.settings import get_settings


@click.group()
def dlq() -> None:
    """Inspect and re-drive bid-commands-dlq."""


@dlq.command()
@click.option(
    "--reason",
    "reasons",
    multiple=True,
    help="Only records with this reason header (repeatable), e.g. handler_error.",
)
@click.option(
    "--dry-run", is_flag=True, help="Count what would be replayed; send and commit nothing."
)
def replay(reasons: tuple[str, ...], dry_run: bool) -> None:
    """Re-produce dead letters to bid-commands, exactly once, up to the current end of the DLQ."""
    with Progress(transient=True) as bar:
        task = bar.add_task("replaying", total=None)
        report = dead_letters.replay(
            get_settings(),
            frozenset(reasons),
            dry_run=dry_run,
            progress=lambda n: bar.advance(task, n),
        )
    verb = "would replay" if dry_run else "replayed"
    total = sum(report.replayed.values())
    click.echo(
        f"{verb} {total} record(s)"
        + "".join(f"\n  {r}: {n}" for r, n in sorted(report.replayed.items()))
    )
    if report.skipped:
        click.echo(
            f"left {sum(report.skipped.values())} record(s) with other reasons: "
            + ", ".join(f"{r} {n}" for r, n in sorted(report.skipped.items()))
        )
