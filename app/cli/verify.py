"""`outbid verify`: exit 0 only when every invariant holds, with the counts to show for it.

Exit codes: 0 every check that ran holds, 1 an invariant is violated, 2 there was nothing to
audit (no commands and no events; `--allow-empty` accepts that on purpose).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from app.audit.findings import CheckResult, Status
from app.audit.verify import verify as run_verify
from app.settings import get_settings
from app.topics.spec import COMMANDS, EVENTS

NOTHING_TO_AUDIT = 2
STYLE = {Status.OK: "green", Status.SKIPPED: "yellow", Status.FAILED: "red"}


@click.command()
@click.option(
    "--json",
    "json_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the checks (status, items checked, problems), counts and problems as JSON.",
)
@click.option(
    "--live",
    is_flag=True,
    help="The system is still processing: commands past the committed offset and "
    "projections behind the event log count as in flight, not as problems.",
)
@click.option(
    "--allow-empty",
    is_flag=True,
    help="Exit 0 when there is nothing to audit (no commands, no events) instead of 2.",
)
def verify(json_file: Path | None, live: bool, allow_empty: bool) -> None:
    """Audit the topics: nothing lost, nothing applied twice, projections equal the event log."""
    settings = get_settings()
    console = Console(stderr=True)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("auditing", total=None)

        def progress(what: str, done: int, total: int) -> None:
            bar.update(task, description=f"auditing {what}", completed=done, total=total)

        findings = run_verify(settings, live=live, progress=progress)
    out = Console()
    counts = Table(title="counts", show_header=False)
    for name, value in sorted(findings.counts.items()):
        counts.add_row(name, str(value))
    out.print(counts)
    out.print("invariants", style="bold")
    for result in findings.results():
        # One line each, never wrapped (here and below): scripts grep for "<title>: <status>".
        out.print(_line(result), style=STYLE[result.status], soft_wrap=True, highlight=False)
    for kind, examples in sorted(findings.problems.items()):
        out.print(f"[red]{kind}[/] ({findings.problem_counts[kind]}):")
        for example in examples:
            out.print(f"  {example}", highlight=False, soft_wrap=True)
    if json_file:
        json_file.write_bytes(orjson.dumps(findings.as_json(), option=orjson.OPT_INDENT_2))
    if findings.problem_counts:
        out.print("invariants violated", style="red")
        sys.exit(1)
    if findings.empty:
        empty = (
            f"nothing to audit: no commands in {settings.topic(COMMANDS)} and no events in "
            f"{settings.topic(EVENTS)} at {settings.kafka_bootstrap_servers}"
        )
        if allow_empty:
            out.print(f"{empty} (allowed by --allow-empty)", style="yellow", soft_wrap=True)
            sys.exit(0)
        out.print(
            f"{empty}; check KAFKA_BOOTSTRAP_SERVERS and OUTBID_TOPIC_PREFIX, or pass "
            "--allow-empty if an empty audit is intended",
            style="red",
            soft_wrap=True,
        )
        sys.exit(NOTHING_TO_AUDIT)
    skipped = sum(r.status is Status.SKIPPED for r in findings.results())
    out.print(f"all invariants hold ({skipped} check(s) skipped)", style="green")
    sys.exit(0)


def _line(result: CheckResult) -> str:
    title = result.check.title
    if result.status is Status.SKIPPED:
        return f"  {title}: skipped ({result.reason})"
    if result.status is Status.FAILED:
        return f"  {title}: {result.problems} problem(s) in {result.checked} checked"
    return f"  {title}: ok ({result.checked} checked)"
