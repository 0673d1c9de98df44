"""The measurements of `outbid bench throughput`, one function each, on fresh topics every time.

- ceiling: bench.throughput_kafka.passthrough over commands from app/loadgen.py's generator;
- pipeline: N workers, the auctions opened first (untimed), then N commands sent at full speed
  and timed until every command's offset is committed (decided) and every resulting event's
  offset is committed by the projection (fully processed);
- latency: one worker at fixed offered loads, commands stamped when sent.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
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
    CeilingRun,
    LatencyLevel,
    PipelineRun,
    bucket_delta,
    histogram_summary,
    latency_summary,
    parse_histogram,
    sustained_rate,
)

log = logging.getLogger(__name__)
Say = Callable[[str], None]
Tick = Callable[[int, int], None]  # (done, total)


@dataclass(frozen=True, slots=True)
class Context:
    """What every measurement shares: the servers, the settings, where workers keep their data."""

    settings: Settings
    servers: stack.Servers
    root: Path
    run_id: str
    commit_interval_s: float
    redis: bool
    keep_topics: bool
    seed: int = 1

    @classmethod
    def create(
        cls,
        settings: Settings,
        servers: stack.Servers,
        root: Path,
        *,
        commit_interval_s: float,
        redis: bool,
        keep_topics: bool,
    ) -> Context:
        settings = settings.model_copy(
            update={
                "kafka_bootstrap_servers": servers.kafka,
                "redis_url": SecretStr(servers.redis),
                "commit_interval_s": commit_interval_s,
                "redis_enabled": redis,
            }
        )
        run_id = f"{time.strftime('%H%M%S')}{uuid.uuid4().hex[:4]}"
        return cls(settings, servers, root, run_id, commit_interval_s, redis, keep_topics)

    def scoped(self, label: str) -> Settings:
        """Settings of one measurement: its own topics, consumer group and transactional ids."""
        return self.settings.model_copy(update={"topic_prefix": f"bench-{self.run_id}-{label}."})

    def worker_env(self, settings: Settings) -> dict[str, str]:
        return {
            "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "REDIS_URL": self.servers.redis,
            "OUTBID_TOPIC_PREFIX": settings.topic_prefix,
            "OUTBID_COMMIT_INTERVAL_S": str(self.commit_interval_s),
            "OUTBID_REDIS_ENABLED": "true" if self.redis else "false",
            "OUTBID_PROCESSING_GUARANTEE": settings.processing_guarantee,
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
    loadgen.generate(spec, lambda key, value: records.append((key, value)))
    return records[:auctions], records[auctions:]


# --- the ceiling ---------------------------------------------------------------------------


def ceiling(ctx: Context, label: str, commands: int, say: Say) -> list[CeilingRun]:
    settings = ctx.scoped(label)
    stack.create_topics(settings)
    try:
        opens, rest = commands_stream(1_000, commands - 1_000, ctx.seed)
        records = opens + rest
        kafka.send_all(settings.kafka_bootstrap_servers, settings.topic(COMMANDS), records)
        runs = []
        for transactional in (True, False):
            n, seconds = kafka.passthrough(
                settings.kafka_bootstrap_servers,
                settings.topic(COMMANDS),
                settings.topic(EVENTS),
                len(records),
                transactional=transactional,
                commit_interval_s=ctx.commit_interval_s,
            )
            runs.append(CeilingRun(transactional, n, seconds))
            say(
                f"ceiling ({'transactional' if transactional else 'plain'}): "
                f"{runs[-1].cmds_per_s:,.0f} commands/s"
            )
        return runs
    finally:
        ctx.clean_up(settings)


# --- the pipeline --------------------------------------------------------------------------


def _timeout(commands: int) -> float:
    return max(180.0, commands / 50)  # generous: a stalled worker is reported, never hangs


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
    engine: str = "faust",
) -> PipelineRun:
    """`scale` > 1: `scale` times the auctions, the same timed mix (as many closes as at 1x)."""
    settings = ctx.scoped(label)
    partitions = stack.create_topics(settings)
    bootstrap, topic = settings.kafka_bootstrap_servers, settings.topic(COMMANDS)
    opens, bids = commands_stream(auctions, commands, ctx.seed, close_share=0.2 / scale)
    procs = stack.Workers(ctx.root / label, ctx.worker_env(settings), engine, partitions)
    watcher = kafka.OffsetWatcher(
        bootstrap, settings.group_id, topic, settings.topic(EVENTS), partitions
    )
    try:
        procs.start(workers)
        say(f"{workers} worker(s) ready; opening {len(opens):,} auctions (untimed)")
        kafka.send_all(bootstrap, topic, opens)
        base = watcher.wait(len(opens), _timeout(len(opens)))[-1]
        load = stack.load_average()
        started = time.perf_counter()
        kafka.send_all(bootstrap, topic, bids)
        total = len(opens) + len(bids)
        samples = watcher.wait(
            total, _timeout(len(bids)), lambda p: tick(p.commands_done - len(opens), len(bids))
        )
        decided = next(s.at for s in samples if s.commands_done >= total)
        curve = [(s.at - started, float(s.commands_done - len(opens))) for s in samples]
        run = PipelineRun(
            engine=engine,
            workers=workers,
            auctions=auctions,
            commands=len(bids),
            seconds=samples[-1].at - started,
            decide_seconds=decided - started,
            sustained_cmds_per_s=sustained_rate(curve, len(bids)),
            events=samples[-1].events_written - base.events_written,
            worker_peak_rss_mb=procs.peak_rss_mb(),
            load_avg=load,
        )
        say(
            f"{engine}, {workers} process(es), {auctions:,} auctions: {run.cmds_per_s:,.0f} commands/s "
            f"fully processed (decided at {run.decide_cmds_per_s:,.0f}/s); "
            f"peak RSS {', '.join(f'{mb:.0f}' for mb in run.worker_peak_rss_mb)} MiB"
        )
        return run
    finally:
        watcher.close()
        procs.stop()
        ctx.clean_up(settings)


# --- latency at fixed offered loads ---------------------------------------------------------


def latency(
    ctx: Context,
    max_rate: float,
    auctions: int,
    seconds: float,
    say: Say,
    *,
    engine: str = "faust",
) -> tuple[list[LatencyLevel], list[float]]:
    settings = ctx.scoped(f"latency-{engine}")
    partitions = stack.create_topics(settings)
    bootstrap, topic = settings.kafka_bootstrap_servers, settings.topic(COMMANDS)
    sizes = [max(1, int(share * max_rate * seconds)) for share in LOAD_LEVELS]
    opens, bids = commands_stream(auctions, sum(sizes), ctx.seed)
    procs = stack.Workers(
        ctx.root / f"latency-{engine}", ctx.worker_env(settings), engine, partitions
    )
    watcher = kafka.OffsetWatcher(
        bootstrap, settings.group_id, topic, settings.topic(EVENTS), partitions
    )
    collector = kafka.LatencyCollector(
        bootstrap, settings.topic(EVENTS), settings.topic(HIGHEST_BIDS_CHANGELOG), partitions
    )
    levels: list[LatencyLevel] = []
    try:
        procs.start(1)
        kafka.send_all(bootstrap, topic, opens)
        done = len(opens)
        watcher.wait(done, _timeout(done))
        collector.start_at_end()
        offset = 0
        for share, size in zip(LOAD_LEVELS, sizes, strict=True):
            rate = share * max_rate
            chunk = bids[offset : offset + size]
            offset += size
            say(
                f"{engine} latency at {share:.0%} of max: {rate:,.0f} commands/s for {seconds:.0f}s"
            )
            before = procs.metrics()
            started, first = time.perf_counter(), time.time()
            sent, send_seconds = kafka.send_paced(bootstrap, topic, chunk, rate)
            last = time.time()
            backlog = done + sent - watcher.sample().commands_done
            done += sent
            samples = watcher.wait(done, _timeout(sent))
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
                    event_committed=latency_summary(events),
                    projection_committed=latency_summary(views),
                    projection_applied=_histogram(
                        before, after, "outbid_command_to_projection_seconds"
                    ),
                    redis_visible=_histogram(before, after, "outbid_command_to_redis_seconds"),
                    backlog_after=max(0, backlog),
                )
            )
            shown = levels[-1].measured(engine)
            say(f"  p50/p99/p999 {shown['p50_ms']}/{shown['p99_ms']}/{shown['p999_ms']} ms")
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
