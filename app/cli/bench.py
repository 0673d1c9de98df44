"""`outbid bench`: the benchmarks in bench/ (recovery, throughput)."""

from __future__ import annotations

import click


@click.group()
def bench() -> None:
    """Measure the pipeline on this machine (results as JSON, tables and plots)."""


def _mount() -> None:
    from bench import failover, recovery, throughput  # noqa: PLC0415 - heavy imports only when used

    bench.add_command(recovery.recovery_command, name="recovery")
    bench.add_command(throughput.throughput_command, name="throughput")
    bench.add_command(failover.failover_command, name="failover")


_mount()
