"""`outbid verify`: exit 0 only when every invariant holds, with the counts to show for it."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from app.audit.verify import verify as run_verify
from app.settings import get_settings

CHECKS = {
    "every command has exactly one outcome (decision, duplicate, re-route or dead letter)": (
        "command_without_decision",
        "invalid_command_not_dead_lettered",
        "unkeyed_command_not_rerouted",
    ),
    "no event twice in auction-events": ("duplicate_event", "duplicate_event_id"),
    "no record dead-lettered twice": ("duplicate_dead_letter",),
    "per-auction seq is 1..n without gap": ("seq_gap", "seq_out_of_order"),
    "events decode and are keyed by auction": ("undecodable_event", "event_key_mismatch"),
    "highest_bids table == fold(events)": ("highest_bids_differs_from_fold",),
    "auctions table == fold(events)": ("auctions_differs_from_fold",),
    "Redis read model == fold(events)": ("redis_differs_from_fold",),
    "aggregate snapshots == fold(events) at their seq": (
        "aggregate_snapshot_unreadable",
        "aggregate_snapshot_differs",
        "aggregate_snapshot_without_events",
    ),
}


@click.command()
@click.option(
    "--json",
    "json_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the counts and problems as JSON to this file.",
)
@click.option(
    "--live",
    is_flag=True,
    help="The system is still processing: commands past the committed offset and "
    "projections behind the event log count as in flight, not as problems.",
)
def verify(json_file: Path | None, live: bool) -> None:
    """Audit the topics: nothing lost, nothing applied twice, projections equal the event log."""
    console = Console(stderr=True)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("auditing", total=None)

        def progress(what: str, done: int, total: int) -> None:
            bar.update(task, description=f"auditing {what}", completed=done, total=total)

        findings = run_verify(get_settings(), live=live, progress=progress)
    out = Console()
    counts = Table(title="counts", show_header=False)
    for name, value in sorted(findings.counts.items()):
        counts.add_row(name, str(value))
    out.print(counts)
    checks = Table(title="invariants")
    checks.add_column("check")
    checks.add_column("result")
    for check, kinds in CHECKS.items():
        bad = sum(findings.problem_counts[k] for k in kinds)
        checks.add_row(check, "[green]ok[/]" if not bad else f"[red]{bad} problem(s)[/]")
    out.print(checks)
    for kind, examples in sorted(findings.problems.items()):
        out.print(f"[red]{kind}[/] ({findings.problem_counts[kind]}):")
        for example in examples:
            out.print(f"  {example}", highlight=False)
    if json_file:
        json_file.write_bytes(orjson.dumps(findings.as_json(), option=orjson.OPT_INDENT_2))
    out.print("[green]all invariants hold[/]" if findings.ok else "[red]invariants violated[/]")
    sys.exit(0 if findings.ok else 1)
