"""`outbid bench`: the benchmarks in bench/ (recovery, throughput, failover, transactions, profile).

bench/ is part of a source checkout, not of the installed outbid the worker image holds: its
commands are imported when one runs, and where bench/ is missing they say so in one line.
"""

from __future__ import annotations

import importlib.util

import click

from app.cli import Lazy, LazyGroup

NEEDS_CHECKOUT = (
    "benchmarks need a source checkout: bench/ is not part of the installed outbid (the worker "
    "image leaves it out). In a clone of the repository, run scripts/setup.sh (it installs the "
    "bench extra, matplotlib) and then .venv/bin/outbid bench ..."
)

COMMANDS = {
    "failover": Lazy(
        "bench.failover", "failover_command", "Seconds from kill -9 of a worker to right answers."
    ),
    "profile": Lazy(
        "bench.profile",
        "profile_command",
        "Where a worker's engine thread spends its time (py-spy).",
    ),
    "recovery": Lazy(
        "bench.recovery", "recovery_command", "Replay, changelog and snapshot recovery times."
    ),
    "transactions": Lazy(
        "bench.transactions",
        "transactions_command",
        "What one engine-shaped Kafka transaction costs, by partitions written.",
    ),
    "throughput": Lazy(
        "bench.throughput", "throughput_command", "Ceiling and engine throughput, latency, memory."
    ),
}


class _BenchGroup(LazyGroup):
    def load(self, name: str) -> click.Command:
        try:
            return super().load(name)
        except ModuleNotFoundError as exc:
            if exc.name != "bench":
                raise
            raise click.ClickException(NEEDS_CHECKOUT) from exc

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        if importlib.util.find_spec("bench") is None:
            formatter.write_paragraph()
            formatter.write_text(f"Not available here: {NEEDS_CHECKOUT}")


@click.group(cls=_BenchGroup, lazy=COMMANDS)
def bench() -> None:
    """Measure the pipeline on this machine (results as JSON, tables and plots).

    Runs from a source checkout only: bench/ is not installed in the worker image.
    """
