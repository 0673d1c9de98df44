"""Run every check over the live topics, partition by partition, bounded by end offsets taken first.

Snapshot order matters on a live system: changelogs first (so projections can only lag the
events, never lead them), then the group's committed offsets, then commands, events and the
dead-letter topic. Commands at or after the committed offset are "pending", not missing.
"""

from __future__ import annotations

from collections.abc import Callable

import redis

from app.audit.checks import (
    CommandLedger,
    PartitionAudit,
    coordinate,
    settle_ledger,
    settle_redis_keys,
)
from app.audit.findings import Findings
from app.audit.reader import TopicReader
from app.errors import KafkaUnavailableError
from app.readmodel import auction_key
from app.settings import Settings
from app.topics.spec import (
    AUCTIONS_CHANGELOG,
    COMMANDS,
    DLQ,
    EVENTS,
    HIGHEST_BIDS_CHANGELOG,
    SNAPSHOTS,
)

Progress = Callable[[str, int, int], None]


def verify(settings: Settings, *, live: bool = False, progress: Progress | None = None) -> Findings:
    topic = settings.topic
    reader = TopicReader(settings.kafka_client_config())
    redis_client = (
        redis.Redis.from_url(settings.redis_url.get_secret_value(), socket_timeout=10)
        if settings.redis_enabled
        else None
    )
    findings, ledger = Findings(), CommandLedger()
    audited: set[str] = set()  # every auction with an event in the audited log
    try:
        partitions = reader.partitions(topic(COMMANDS))

        def ends(name: str) -> dict[int, int]:
            return {p: reader.end_offset(topic(name), p) for p in reader.partitions(topic(name))}

        # Snapshots before events: a snapshot commits with its events, so every snapshot read
        # here has its event below the events bound read afterwards (also on a live system).
        snapshots_end = ends(SNAPSHOTS)
        views_end, aggregates_end = ends(HIGHEST_BIDS_CHANGELOG), ends(AUCTIONS_CHANGELOG)
        committed = reader.committed(settings.group_id, topic(COMMANDS), partitions) if live else {}
        commands_end, events_end, dlq_end = ends(COMMANDS), ends(EVENTS), ends(DLQ)
        for step, p in enumerate(partitions):
            if progress:
                progress(f"partition {p}", step, len(partitions))
            audit = PartitionAudit(p, topic(COMMANDS), findings, ledger, settings.recent_commands)
            audit.live, audit.committed_offset = live, committed.get(p, 0)
            for record in reader.read(topic(COMMANDS), p, commands_end[p]):
                audit.command(record)
            audit.snapshots(
                reader.read(topic(SNAPSHOTS), p, snapshots_end.get(p, 0)),
                reader.incarnation(topic(EVENTS)),
                events_end.get(p, 0),
            )
            for record in reader.read(topic(EVENTS), p, events_end.get(p, 0)):
                audit.event(record)
            audit.settle_snapshots()
            audit.settle_commands()
            audit.compare_views(
                "highest_bids", reader.read(topic(HIGHEST_BIDS_CHANGELOG), p, views_end.get(p, 0))
            )
            audit.compare_aggregates(
                "auctions", reader.read(topic(AUCTIONS_CHANGELOG), p, aggregates_end.get(p, 0))
            )
            if redis_client is not None:
                ids = sorted(audit.views)
                values = redis_client.pipeline(transaction=False)
                for auction_id in ids:
                    values.hget(auction_key(settings.redis_prefix, auction_id), "view")
                audit.compare_redis(dict(zip(ids, values.execute(), strict=True)))
            findings.counts["auctions"] += len(audit.states)
            audited.update(audit.states)
        sources = _dead_letter_sources(reader, topic(DLQ), dlq_end, findings)
        settle_ledger(ledger, sources, findings)
        if redis_client is None:
            findings.skip("redis", "OUTBID_REDIS_ENABLED is false")
        else:
            stored = _redis_auctions(redis_client, settings.redis_prefix)
            settle_redis_keys(stored, audited, findings, live=live)
        if progress:
            progress("done", len(partitions), len(partitions))
    except redis.RedisError as exc:
        raise KafkaUnavailableError(
            f"Redis at the configured REDIS_URL did not answer ({exc}); start it, or audit the Kafka "
            "side only with OUTBID_REDIS_ENABLED=false"
        ) from exc
    finally:
        reader.close()
        if redis_client is not None:
            redis_client.close()
    return findings


def _redis_auctions(client: redis.Redis, prefix: str) -> dict[str, str]:
    """Auction id -> key of every auction hash under the prefix (SCAN: never blocks Redis)."""
    head = auction_key(prefix, "")
    pattern = "".join(f"\\{c}" if c in "\\*?[]" else c for c in head) + "*"
    return {
        key.decode().removeprefix(head): key.decode()
        for key in client.scan_iter(match=pattern, count=1000)
    }


def _dead_letter_sources(
    reader: TopicReader, dlq: str, ends: dict[int, int], findings: Findings
) -> set[str]:
    """Where each dead letter came from; a source dead-lettered twice is a problem."""
    sources: set[str] = set()
    for p, end in ends.items():
        for record in reader.read(dlq, p, end):
            findings.counts["dead_letters"] += 1
            reason = record.headers.get("outbid.reason", b"unknown").decode(errors="replace")
            findings.counts[f"dead_letters_{reason}"] += 1
            src_topic = record.headers.get("outbid.source.topic", b"").decode(errors="replace")
            src_partition = record.headers.get("outbid.source.partition", b"-1").decode()
            src_offset = record.headers.get("outbid.source.offset", b"-1").decode()
            if src_partition.lstrip("-").isdigit() and src_offset.lstrip("-").isdigit():
                findings.examined["no_duplicate_dead_letters"] += 1
                source = coordinate(src_topic, int(src_partition), int(src_offset))
                if source in sources:
                    findings.problem(
                        "duplicate_dead_letter",
                        f"{source} dead-lettered again at {dlq}[{p}]@{record.offset}",
                    )
                sources.add(source)
    return sources
