"""`outbid topics apply|check`: make the cluster match topics.yaml, or show how it differs."""

from __future__ import annotations

import sys

import click

from app.settings import get_settings
from app.topics import admin, load_topics


@click.group()
def topics() -> None:
    """Reconcile Kafka topics with topics.yaml."""


def _plan() -> tuple[admin.Plan, object, object]:
    settings = get_settings()
    spec = load_topics(settings.topics_file)
    client = admin.admin_client(settings.kafka_client_config())
    return (
        admin.plan(spec, client, settings.kafka_client_config(), settings.topic_prefix),
        spec,
        client,
    )


def _print(plan: admin.Plan) -> None:
    for change in plan.changes:
        colour = "red" if change.action == "refuse" else "yellow"
        click.secho(f"{change.action:15} {change.topic:40} {change.detail}", fg=colour)


@topics.command()
@click.option("--dry-run", is_flag=True, help="Print the changes without making them.")
def apply(dry_run: bool) -> None:
    """Create missing topics and align drifted configs (idempotent)."""
    plan, spec, client = _plan()
    if not plan.changes:
        click.echo(
            f"no change: all topics match {get_settings().topics_file.name} ({plan.brokers} broker(s))"
        )
        return
    _print(plan)
    if dry_run:
        click.echo(f"dry run: {len(plan.actionable)} change(s) not applied")
        return
    settings = get_settings()
    admin.apply(plan, spec, client, settings.topic_prefix)  # type: ignore[arg-type]
    left = admin.settle(spec, client, settings.kafka_client_config(), settings.topic_prefix)  # type: ignore[arg-type]
    if left.changes:
        _print(left)
        click.echo(
            f"applied {len(plan.actionable)} change(s), but after {admin.SETTLE_TIMEOUT_S:.0f} s "
            f"the cluster still shows {len(left.changes)} difference(s): are all brokers up? "
            "`outbid topics check` tells when they agree",
            err=True,
        )
        sys.exit(1)
    click.echo(f"applied {len(plan.actionable)} change(s); the cluster shows them")


@topics.command()
def check() -> None:
    """Exit 1 and print the drift when live topics differ from topics.yaml."""
    plan, _, _ = _plan()
    if plan.changes:
        _print(plan)
        click.echo(f"drift: {len(plan.changes)} difference(s) from topics.yaml", err=True)
        sys.exit(1)
    click.echo("ok: live topics match topics.yaml")
