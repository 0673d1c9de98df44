"""`outbid bench profile`: where one worker's engine thread spends its time, sampled by py-spy.

Two measurements, each the same as in `outbid bench throughput` (bench/throughput_phases.py),
with py-spy recording the worker while it runs:

- backlog: one worker, `--commands` sent at full speed after a discarded warm-up run; py-spy
  samples the threads that are running (CPU) from the first timed command sent until every
  command is committed;
- steady: one worker at the steady 3,000 commands/s for `--seconds`; py-spy samples every
  thread whether it runs or waits (`--idle`), so the engine thread's samples are its wall time:
  the waits on Kafka's round trips show.

Both raw files (py-spy's collapsed stacks) go to `--out`, with profile.json: the engine thread's
samples by category (bench/profile_stacks.py), the throughput and latency measured while it was
sampled, the git commit and the settings. Sampling slows the worker (py-spy pauses it to read
each stack), so the figures beside the profile are not the benchmark's.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import click
import orjson
from confluent_kafka import KafkaException
from rich.console import Console
from rich.table import Table

from app.errors import OutbidError
from app.settings import REPO_ROOT, get_settings
from bench import profile_stacks
from bench import throughput_phases as phases
from bench import throughput_stack as stack
from bench.throughput import BenchSpec
from bench.throughput_stats import STEADY_RATE

STOP_TIMEOUT_S = 60.0  # py-spy writes its file when interrupted; a big profile takes a moment
ATTACH_S = 1.0  # py-spy fails within this when it cannot read the worker
FULL = BenchSpec()  # the throughput bench's full run: its commands and auctions are profiled


class ProfileError(OutbidError):
    """The profile could not be taken; the message says why and what to do."""


@click.command()
@click.option(
    "--commands",
    default=FULL.commands,
    show_default=True,
    type=click.IntRange(100),
    help="Timed commands of the backlog run (the full throughput run's count).",
)
@click.option(
    "--seconds",
    default=30.0,
    show_default=True,
    type=click.FloatRange(1),
    help="Length of the steady 3,000 commands/s level.",
)
@click.option(
    "--rate", default=200, show_default=True, type=click.IntRange(1, 1000), help="Samples/s."
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("profile"),
    show_default=True,
    help="Folder for backlog.txt, steady.txt (py-spy's raw stacks) and profile.json.",
)
def profile_command(commands: int, seconds: float, rate: int, out: Path) -> None:
    """Where a worker's engine thread spends its time, under a backlog and at 3,000/s."""
    py_spy = _py_spy()
    settings = get_settings()
    console = Console(stderr=True)
    out.mkdir(parents=True, exist_ok=True)
    source, machine = stack.source_revision(), stack.machine_info()
    try:
        with tempfile.TemporaryDirectory(prefix="outbid-bench-profile-") as scratch:
            root = Path(scratch)
            with stack.servers(root, settings.kafka_heap) as servers:
                ctx = phases.Context.create(
                    settings,
                    servers,
                    root,
                    transaction_max_s=settings.transaction_max_s,
                    consume_batch=settings.consume_batch,
                    redis=settings.redis_enabled,
                    keep_topics=False,
                )
                report = _measure(ctx, py_spy, commands, seconds, rate, out, console)
    except KafkaException as exc:
        raise ProfileError(f"Kafka failed during the profile: {exc.args[0]}") from exc
    machine["load_avg_end"] = stack.load_average()
    report = {"source": source, "machine": machine, **report}
    (out / "profile.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    _print(report)
    console.print(f"raw stacks and profile.json: {out}")


def _py_spy() -> str:
    """py-spy next to this Python (a venv's bin/) or on PATH."""
    here = Path(sys.executable).parent / "py-spy"
    found = str(here) if here.exists() else shutil.which("py-spy")
    if found is None:
        raise ProfileError(
            "py-spy is not installed: `pip install -e '.[bench]'` (scripts/setup.sh does) or "
            "`pip install py-spy`"
        )
    return found


def _measure(
    ctx: phases.Context,
    py_spy: str,
    commands: int,
    seconds: float,
    rate: int,
    out: Path,
    console: Console,
) -> dict[str, Any]:
    auctions, say = FULL.auctions, console.print

    def tick(_done: int, _total: int) -> None:
        pass

    say("warm-up run (1 worker, not sampled)")
    phases.pipeline(ctx, "profile-warmup", 1, auctions, commands, say, tick)
    say(f"backlog: {commands:,} commands, py-spy at {rate}/s on the worker")
    backlog_file = out / "backlog.txt"
    run = phases.pipeline(
        ctx, "profile-backlog", 1, auctions, commands, say, tick,
        watch=_recorder(py_spy, backlog_file, rate, idle=False),
    )  # fmt: skip
    say(f"steady: {STEADY_RATE:,.0f} commands/s for {seconds:.0f} s, py-spy with idle threads")
    steady_file = out / "steady.txt"
    levels, _rss = phases.latency(
        ctx, 0.0, auctions, seconds, say, shares=(),
        watch=_recorder(py_spy, steady_file, rate, idle=True),
    )  # fmt: skip
    kafka_calls = profile_stacks.KafkaCalls(REPO_ROOT)
    backlog = _parsed(backlog_file, kafka_calls)
    steady = _parsed(steady_file, kafka_calls)
    [level] = levels
    return {
        "config": {
            "commands": commands,
            "auctions": auctions,
            "steady_rate_per_s": STEADY_RATE,
            "steady_seconds": seconds,
            "samples_per_s": rate,
            "transaction_max_s": ctx.settings.transaction_max_s,
            "consume_batch": ctx.settings.consume_batch,
            "redis": ctx.settings.redis_enabled,
        },
        "backlog": {
            "cmds_per_s_while_sampled": round(run.cmds_per_s, 1),
            "sampled": "running threads (CPU)",
            "threads": backlog.threads,
            "engine_samples": backlog.engine_samples,
            "engine_shares": backlog.shares(),
        },
        "steady": {
            "latency_while_sampled_ms": level.projection_committed,
            "sampled": "every thread, running or waiting (wall time)",
            "threads": steady.threads,
            "engine_samples": steady.engine_samples,
            "engine_shares": steady.shares(),
        },
    }


def _parsed(path: Path, kafka_calls: profile_stacks.KafkaCalls) -> profile_stacks.Profile:
    profile = profile_stacks.parse(path.read_text().splitlines(), kafka_calls)
    if not profile.engine_samples:
        raise ProfileError(
            f"{path} has no samples of the worker's {profile_stacks.ENGINE_THREAD!r} thread "
            f"(threads seen: {', '.join(profile.threads) or 'none'}): was the engine running?"
        )
    return profile


def _recorder(py_spy: str, path: Path, rate: int, *, idle: bool) -> phases.Watch:
    """py-spy recording the measurement's (single) worker while the watched part runs."""

    @contextlib.contextmanager
    def record(procs: stack.Workers) -> Iterator[None]:
        [pid] = procs.pids
        path.unlink(missing_ok=True)  # never a former run's stacks taken for this one's
        args = [
            py_spy, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw",
            "--threads", "--output", str(path), *(["--idle"] if idle else []),
        ]  # fmt: skip
        # py-spy's messages go to a file: a pipe nobody reads while it runs could fill and stop it
        with tempfile.TemporaryFile("w+") as errors:
            spy = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=errors)
            try:
                time.sleep(ATTACH_S)
                if spy.poll() is not None:
                    raise ProfileError(_failed(pid, spy.returncode, errors))
                yield
            finally:
                if spy.poll() is None:
                    spy.send_signal(signal.SIGINT)  # py-spy writes what it has and exits 0
                    try:
                        spy.wait(timeout=STOP_TIMEOUT_S)
                    except subprocess.TimeoutExpired:
                        spy.kill()
                        spy.wait()
            if spy.returncode != 0 or not path.exists() or path.stat().st_size == 0:
                raise ProfileError(_failed(pid, spy.returncode, errors))

    return record


def _failed(pid: int, returncode: int | None, errors: IO[str]) -> str:
    errors.seek(0)
    said = " ".join(errors.read().split())[-400:] or "nothing on stderr"
    return (
        f"py-spy recorded nothing from worker {pid} (exit {returncode}: {said}); it must be "
        "allowed to read another process: root, CAP_SYS_PTRACE, or kernel.yama.ptrace_scope 0"
    )


def _print(report: dict[str, Any]) -> None:
    backlog, steady = report["backlog"], report["steady"]
    table = Table(title="the engine thread's samples (share of its samples)")
    table.add_column("spent on")
    table.add_column(
        f"backlog, CPU ({backlog['cmds_per_s_while_sampled']:,.0f} cmd/s)", justify="right"
    )
    p50 = steady["latency_while_sampled_ms"].get("p50_ms")
    table.add_column(f"3,000/s, wall time (p50 {p50} ms)", justify="right")
    names = list(dict.fromkeys([*backlog["engine_shares"], *steady["engine_shares"]]))
    for name in names:
        table.add_row(
            name,
            f"{backlog['engine_shares'].get(name, 0):.1%}",
            f"{steady['engine_shares'].get(name, 0):.1%}",
        )
    table.add_row("samples", str(backlog["engine_samples"]), str(steady["engine_samples"]))
    Console().print(table)
