"""tables/recovery.py against the real broker: local copy, snapshot, tail, and foreign offsets."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from rocksdict import Cache

from app import metrics
from app.audit.reader import TopicReader
from app.producers import command_producer
from app.settings import Settings
from app.snapshots.blobs import DirectoryBlobStore
from app.snapshots.checkpoints import Policy, TableSnapshots
from app.topics.admin import admin_client
from app.topics.incarnation import Incarnation
from tables import Table
from tables.auctions import AUCTIONS
from tables.partition import PartitionTables
from tables.recovery import recover
from tables.store import rocksdb_options
from tests.conftest import Servers, run_outbid

pytestmark = pytest.mark.integration
PARTITION = 3


@pytest.fixture
def settings(servers: Servers, prefix: str, outbid_env: dict[str, str]) -> Settings:
    applied = run_outbid("topics", "apply", env=outbid_env)
    assert applied.returncode == 0, applied.stderr
    return Settings(KAFKA_BOOTSTRAP_SERVERS=servers.kafka, topic_prefix=prefix)  # type: ignore[call-arg]


def write_changelog(settings: Settings, table: Table, values: dict[bytes, bytes]) -> None:
    producer = command_producer(settings.kafka_client_config())
    for key, value in values.items():
        producer.produce(settings.topic(table.changelog), key=key, value=value, partition=PARTITION)
    assert producer.flush(30) == 0


def incarnation(settings: Settings, table: Table) -> Incarnation:
    reader = TopicReader(settings.kafka_client_config())
    try:
        return reader.incarnation(settings.topic(table.changelog))
    finally:
        reader.close()


def recreate(settings: Settings, env: dict[str, str], table: Table) -> None:
    """Delete the changelog topic and create it again, as `outbid topics apply` does."""
    admin = admin_client(settings.kafka_client_config())
    topic = settings.topic(table.changelog)
    admin.delete_topics([topic])[topic].result()
    deadline = time.monotonic() + 60
    while True:  # KRaft deletes asynchronously: apply fails or no-ops until the name is free
        applied = run_outbid("topics", "apply", env=env)
        if applied.returncode == 0 and topic in admin.list_topics(timeout=10).topics:
            return
        assert time.monotonic() < deadline, applied.stderr
        time.sleep(0.5)


def snapshot_now(
    settings: Settings,
    service: TableSnapshots,
    tables: PartitionTables,
    table: Table,
    staging: Path,
) -> None:
    db = tables.dbs[table.name]
    service.note_writes(table.name, PARTITION, 1)
    changelog = (settings.topic(table.changelog), incarnation(settings, table))
    captured = service.capture(table.name, PARTITION, db.db, changelog, db.offset, {}, staging)
    assert service.publish(captured) is not None


def recovered(
    settings: Settings, folder: Path, snapshots: TableSnapshots | None = None
) -> tuple[PartitionTables, dict[str, tuple[str, int]]]:
    tables = PartitionTables(PARTITION, folder, rocksdb_options(Cache(1 << 20)), 100)
    reader = TopicReader(settings.kafka_client_config())
    try:
        done = recover(tables, reader, lambda t: settings.topic(t.changelog), snapshots)
    finally:
        reader.close()
    return tables, {r.table: (r.start, r.replayed) for r in done}


def test_a_local_database_replays_only_the_changelog_after_its_offset(
    settings: Settings, tmp_path: Path
) -> None:
    write_changelog(settings, AUCTIONS, {f"k{n}".encode(): b"1" for n in range(50)})
    tables, how = recovered(settings, tmp_path)
    assert how[AUCTIONS.name] == ("empty", 50)
    tables.close()
    write_changelog(settings, AUCTIONS, {b"k0": b"2", b"new": b"3"})
    tables, how = recovered(settings, tmp_path)
    assert how[AUCTIONS.name] == ("local", 2)
    assert tables.read(AUCTIONS, b"k0") == b"2"
    assert tables.read(AUCTIONS, b"k49") == b"1"
    tables.close()


def test_a_snapshot_is_restored_then_only_the_tail_is_replayed(
    settings: Settings, tmp_path: Path
) -> None:
    write_changelog(settings, AUCTIONS, {f"k{n}".encode(): b"1" for n in range(40)})
    service = TableSnapshots(
        DirectoryBlobStore(tmp_path / "blobs"), settings.group_id, Policy(0, 1, keep=2)
    )
    tables, _ = recovered(settings, tmp_path / "worker-a")
    db = tables.dbs[AUCTIONS.name]
    service.note_writes(AUCTIONS.name, PARTITION, 1)
    captured = service.capture(
        AUCTIONS.name,
        PARTITION,
        db.db,
        (settings.topic(AUCTIONS.changelog), incarnation(settings, AUCTIONS)),
        db.offset,
        {},
        tmp_path / "worker-a" / "staging",
    )
    assert service.publish(captured) is not None
    tables.close()
    write_changelog(settings, AUCTIONS, {b"late": b"9"})
    fresh, how = recovered(settings, tmp_path / "worker-b", service)  # another machine
    assert how[AUCTIONS.name] == ("snapshot", 1)
    assert fresh.read(AUCTIONS, b"k39") == b"1"
    assert fresh.read(AUCTIONS, b"late") == b"9"
    fresh.close()


def test_a_database_ahead_of_the_changelog_is_discarded(settings: Settings, tmp_path: Path) -> None:
    tables, _ = recovered(settings, tmp_path)
    tables.dbs[AUCTIONS.name].write([(b"ghost", b"x")], 500)  # from a deleted incarnation
    tables.close()
    write_changelog(settings, AUCTIONS, {b"real": b"1"})
    tables, how = recovered(settings, tmp_path)
    assert how[AUCTIONS.name] == ("empty", 1)
    assert tables.read(AUCTIONS, b"ghost") is None
    assert tables.read(AUCTIONS, b"real") == b"1"
    tables.close()


def test_a_snapshot_of_a_recreated_topic_is_rejected_as_foreign_even_when_the_new_one_is_longer(
    settings: Settings, outbid_env: dict[str, str], tmp_path: Path
) -> None:
    write_changelog(settings, AUCTIONS, {f"old{n}".encode(): b"1" for n in range(10)})
    service = TableSnapshots(
        DirectoryBlobStore(tmp_path / "blobs"), settings.group_id, Policy(0, 1, keep=2)
    )
    tables, _ = recovered(settings, tmp_path / "worker-a")
    snapshot_now(settings, service, tables, AUCTIONS, tmp_path / "worker-a" / "staging")
    tables.close()
    recreate(settings, outbid_env, AUCTIONS)
    # The new incarnation grows past the snapshot's offset: offsets alone would accept it.
    write_changelog(settings, AUCTIONS, {f"new{n}".encode(): b"2" for n in range(25)})
    rejected = metrics.SNAPSHOT_REJECTED.labels(AUCTIONS.name, "foreign")
    before = rejected._value.get()
    fresh, how = recovered(settings, tmp_path / "worker-b", service)
    assert rejected._value.get() == before + 1
    assert how[AUCTIONS.name] == ("empty", 25)  # the whole new changelog, nothing of the old
    assert fresh.read(AUCTIONS, b"old0") is None
    assert fresh.read(AUCTIONS, b"new24") == b"2"
    fresh.close()


def test_a_local_database_of_a_recreated_topic_is_discarded_even_when_the_new_one_is_longer(
    settings: Settings, outbid_env: dict[str, str], tmp_path: Path
) -> None:
    write_changelog(settings, AUCTIONS, {f"old{n}".encode(): b"1" for n in range(10)})
    tables, _ = recovered(settings, tmp_path)
    tables.close()
    recreate(settings, outbid_env, AUCTIONS)
    write_changelog(settings, AUCTIONS, {f"new{n}".encode(): b"2" for n in range(25)})
    tables, how = recovered(settings, tmp_path)
    assert how[AUCTIONS.name] == ("empty", 25)
    assert tables.read(AUCTIONS, b"old0") is None
    assert tables.read(AUCTIONS, b"new0") == b"2"
    tables.close()
