"""The measurements of `outbid bench throughput`, one function each, on fresh topics every time.

- ceiling: bench.throughput_kafka.passthrough over commands from app/loadgen.py's generator;
- pipeline: N workers, the auctions opened first (untimed), then N commands sent at full speed;
  the rate is read off the workers' committed offsets over the steady window (once every command
  is in Kafka, until 90% are committed), and the run ends when every command is committed and
  every committed view is written to Redis;
- latency: one worker at fixed offered loads, commands stamped when sent.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from app import loadgen
from app.settings import Settings
from app.topics.spec import COMMANDS, EVENTS, HIGHEST_BIDS_CHANGELOG
from bench import throughput_kafka as kafka
from bench import throughput_stack as stack
from bench.throughput_stats import (
    LOAD_LEVELS,
    STEADY_RATE,
    CeilingRun,
    LatencyLevel,
    PipelineRun,
    bucket_delta,
    histogram_summary,
    latency_summary,
    parse_histogram,
    steady_rate,
)

log = logging.getLogger(__name__)
Say = Callable[[str], None]
Tick = Callable[[int, int], None]  # (done, total)
# Something to run around a measurement's timed part, given its workers (bench/profile.py records
# them with py-spy there); by default nothing.
Watch = Callable[[stack.Workers], contextlib.AbstractContextManager[object]]


@dataclass(frozen=True, slots=True)
class Context:
    """What every measurement shares: the servers, the settings, where workers keep their data."""

    settings: Settings  # the engine settings measured (transaction_max_s, consume_batch, redis)
    servers: stack.Servers
    root: Path
    run_id: str
    keep_topics: bool
    seed: int = 1

    @classmethod
    def create(
        cls,
        settings: Settings,
        servers: stack.Servers,
        root: Path,
        *,
        transaction_max_s: float,
        consume_batch: int,
        redis: bool,
        keep_topics: bool,
    ) -> Context:
        settings = settings.model_copy(
            update={
                "kafka_bootstrap_servers": servers.kafka,
                "redis_url": SecretStr(servers.redis),
                "transaction_max_s": transaction_max_s,
                "consume_batch": consume_batch,
                "redis_enabled": redis,
            }
        )
        run_id = f"{time.strftime('%H%M%S')}{uuid.uuid4().hex[:4]}"
        return cls(settings, servers, root, run_id, keep_topics)

    @property
    def redis(self) -> bool:
        return self.settings.redis_enabled

    @property
    def cadence(self) -> kafka.Cadence:
        return kafka.Cadence(self.settings.transaction_max_s, self.settings.consume_batch)

    def scoped(self, label: str) -> Settings:
        """Settings of one measurement: its own topics, consumer group and transactional ids."""
        return self.settings.model_copy(update={"topic_prefix": f"bench-{self.run_id}-{label}."})

    def worker_env(self, settings: Settings, folder: Path) -> dict[str, str]:
        """The environment of the measurement's workers; every other setting is the caller's."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "REDIS_URL": self.servers.redis,
            "OUTBID_TOPIC_PREFIX": settings.topic_prefix,
            "OUTBID_REDIS_ENABLED": "true" if self.redis else "false",
            "OUTBID_TRANSACTION_MAX_S": str(settings.transaction_max_s),
            "OUTBID_CONSUME_BATCH": str(settings.consume_batch),
            # table snapshots go to the scratch folder, not to the repository's .outbid/
            "OUTBID_STATE_DIR": str(folder / "state"),
        }

    def clean_up(self, settings: Settings) -> None:
        """A private stack is thrown away whole; on shared servers remove what the run wrote."""
        if self.servers.private or self.keep_topics:
            return
        stack.delete_topics(settings)
        if self.redis:
            stack.delete_redis_keys(self.servers.redis, settings.redis_prefix)


def commands_stream(
    auctions: int, commands: int, seed: int, close_share: float = 0.2
) -> tuple[list[kafka.Record], ...]:
    """(opens, the rest) from the load generator: auctions opened first, then skewed bids with
    1% duplicates and 1% garbage, and close_share * auctions closes at the end."""
    records: list[kafka.Record] = []
    spec = loadgen.LoadSpec(
        commands=auctions + commands,
        auctions=auctions,
        close_share=close_share,
        seed=seed,
        run_id="B",
    )
    # A copy of each value: orjson's bytes keep their 4 KiB output buffer (orjson 3.13), which
    # for the ~165-byte commands held here made a million of them take 4 GB instead of 0.2.
    loadgen.generate(spec, lambda key, value: records.append((key, bytes(memoryview(value)))))
    return records[:auctions], records[auctions:]


def _timeout(commands: int) -> float:
    return max(180.0, commands / 50)  # generous: a stalled worker is reported, never hangs


# --- the ceiling ---------------------------------------------------------------------------


def ceiling(ctx: Context, label: str, commands: int, say: Say) -> list[CeilingRun]:
    settings = ctx.scoped(label)
    stack.create_topics(settings)
    try:
        opens, rest = commands_stream(1_000, commands - 1_000, ctx.seed)
        records = opens + rest
        config = settings.kafka_client_config()
        kafka.send_all(config, settings.topic(COMMANDS), records)
        runs = []
        for transactional in (True, False):
            run = kafka.passthrough(
                config,
                settings.topic(COMMANDS),
                settings.topic(EVENTS),
                len(records),
                ctx.cadence,
                transactional=transactional,
            )
            runs.append(run)
            say(
                f"ceiling ({'transactional' if transactional else 'plain'}): "
                f"{run.cmds_per_s:,.0f} commands/s, {run.transactions:,} commits"
            )
        return runs
    finally:
        ctx.clean_up(settings)


# --- the pipeline --------------------------------------------------------------------------


def pipeline(
    ctx: Context,
    label: str,
    workers: int,
    auctions: int,
    commands: int,
    say: Say,
    tick: Tick,
    *,
    scale: int = 1,
    watch: Watch = contextlib.nullcontext,
) -> PipelineRun:
    """`scale` > 1: `scale` times the auctions, the same timed mix (as many closes as at 1x).
    `watch` runs from the first timed command sent until every command is committed and written."""
    settings = ctx.scoped(label)
    partitions = stack.create_topics(settings)
    config, topic = settings.kafka_client_config(), settings.topic(COMMANDS)
    opens, bids = commands_stream(auctions, commands, ctx.seed, close_share=0.2 / scale)
    folder = ctx.root / label
    procs = stack.Workers(folder, ctx.worker_env(settings, folder))
    watcher = kafka.OffsetWatcher(config, settings.group_id, topic, partitions)
    try:
        procs.start(workers)
        say(f"{workers} worker(s) ready; opening {len(opens):,} auctions (untimed)")
        kafka.send_all(config, topic, opens)
        watcher.wait(len(opens), _timeout(len(opens)))
        base = procs.wait_written(len(opens), redis=ctx.redis)
        base_each = procs.each()
        load = stack.load_average()
        total = len(opens) + len(bids)
        with watch(procs):  # its own start and stop are outside what is measured
            cpu_before = _cpu(procs, ctx.servers)
            started = time.perf_counter()
            sent_s = kafka.send_all(config, topic, bids)
            samples = watcher.wait(
                total, _timeout(len(bids)), lambda p: tick(p.commands_done - len(opens), len(bids))
            )
            end = procs.wait_written(total, redis=ctx.redis)
            seconds = time.perf_counter() - started
            cpu_after = _cpu(procs, ctx.servers)
            end_each = procs.each()
        curve = [(s.at - started, float(s.commands_done - len(opens))) for s in samples]
        steady, window_s = steady_rate(curve, len(bids), after=sent_s)
        run = PipelineRun(
            workers=workers,
            auctions=auctions,
            commands=len(bids),
            seconds=seconds,
            steady_cmds_per_s=steady,
            steady_window_s=round(window_s, 3),
            events=int(end.events - base.events),
            transactions=int(end.transactions - base.transactions),
            worker_peak_rss_mb=procs.peak_rss_mb(),
            load_avg=load,
            worker_commands=[
                int(e.commands - b.commands) for b, e in zip(base_each, end_each, strict=True)
            ],
            worker_cpu_s=_spent(cpu_before[0], cpu_after[0]),
            broker_cpu_s=_spent(cpu_before[1], cpu_after[1]),
        )
        say(
            f"{workers} worker(s), {auctions:,} auctions: {run.cmds_per_s:,.0f} commands/s "
            f"over {window_s:.1f}s of steady backlog ({run.overall_cmds_per_s:,.0f}/s from the "
            f"first sent to all fully processed); peak RSS "
            f"{', '.join(f'{mb:.0f}' for mb in run.worker_peak_rss_mb)} MiB"
        )
        return run
    finally:
        watcher.close()
        procs.stop()
        ctx.clean_up(settings)


def _cpu(procs: stack.Workers, servers: stack.Servers) -> tuple[float | None, float | None]:
    """CPU seconds used so far by the workers, and by the broker(s) of a private stack."""
    brokers = stack.cpu_seconds(servers.broker_pids) if servers.broker_pids else None
    return stack.cpu_seconds(procs.pids), brokers


def _spent(before: float | None, after: float | None) -> float | None:
    return round(after - before, 3) if before is not None and after is not None else None


# --- latency at fixed offered loads ---------------------------------------------------------


def latency(
    ctx: Context,
    max_rate: float,
    auctions: int,
    seconds: float,
    say: Say,
    *,
    shares: Sequence[float] = LOAD_LEVELS,
    watch: Watch = contextlib.nullcontext,
) -> tuple[list[LatencyLevel], list[float]]:
    """One worker; `shares` of `max_rate`, then STEADY_RATE, each for `seconds`. `watch` runs
    over the levels (not while the auctions open)."""
    settings = ctx.scoped("latency")
    partitions = stack.create_topics(settings)
    config, topic = settings.kafka_client_config(), settings.topic(COMMANDS)
    rates: list[tuple[float | None, float]] = [(s, s * max_rate) for s in shares]
    rates.append((None, STEADY_RATE))
    sizes = [max(1, int(rate * seconds)) for _share, rate in rates]
    opens, bids = commands_stream(auctions, sum(sizes), ctx.seed)
    folder = ctx.root / "latency"
    procs = stack.Workers(folder, ctx.worker_env(settings, folder))
    watcher = kafka.OffsetWatcher(config, settings.group_id, topic, partitions)
    collector = kafka.LatencyCollector(
        config, settings.topic(EVENTS), settings.topic(HIGHEST_BIDS_CHANGELOG), partitions
    )
    levels: list[LatencyLevel] = []
    try:
        procs.start(1)
        # the collector and the sender connect while the auctions open: never on the clock
        collector.start_at_end()
        sender = kafka.PacedSender(config, topic)
        kafka.send_all(config, topic, opens)
        done = len(opens)
        watcher.wait(done, _timeout(done))
        procs.wait_written(done, redis=ctx.redis)
        with watch(procs):
            offset = 0
            for (share, rate), size in zip(rates, sizes, strict=True):
                chunk = bids[offset : offset + size]
                offset += size
                what = f"{share:.0%} of max" if share is not None else "the steady rate"
                say(f"latency at {what}: {rate:,.0f} commands/s for {seconds:.0f}s")
                before = procs.metrics()
                started, first = time.perf_counter(), time.time()
                sent, send_seconds = sender.send(chunk, rate)
                last = time.time()
                backlog = done + sent - watcher.sample().commands_done
                done += sent
                samples = watcher.wait(done, _timeout(sent))
                procs.wait_written(done, redis=ctx.redis)
                time.sleep(0.5)  # the collector's last fetch
                if collector.error:
                    raise collector.error
                after = procs.metrics()
                events, views = collector.window(first, last)
                levels.append(
                    LatencyLevel(
                        share=share,
                        offered_per_s=round(rate, 1),
                        sent=sent,
                        send_seconds=round(send_seconds, 3),
                        seconds=round(samples[-1].at - started, 3),
                        projection_committed=latency_summary(views),
                        event_committed=latency_summary(events),
                        projection_applied=_histogram(
                            before, after, "outbid_command_to_projection_seconds"
                        ),
                        redis_visible=_histogram(before, after, "outbid_command_to_redis_seconds"),
                        backlog_after=max(0, backlog),
                    )
                )
                view = levels[-1].projection_committed
                say(f"  p50/p99/p999 {view['p50_ms']}/{view['p99_ms']}/{view['p999_ms']} ms")
        return levels, procs.peak_rss_mb()
    finally:
        if collector.is_alive():
            collector.stop()
        watcher.close()
        procs.stop()
        ctx.clean_up(settings)


def _histogram(before: str, after: str, name: str) -> dict[str, float | int | None]:
    delta = bucket_delta(parse_histogram(after, name), parse_histogram(before, name))
    return histogram_summary(delta)
