"""topics.yaml validation and resolution (no server)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from app.errors import TopicsFileError
from app.topics import load_topics
from tests.conftest import REPO

GOOD = yaml.safe_load((REPO / "topics.yaml").read_text())


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "topics.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _variant(**topic_changes: dict[str, object]) -> dict[str, object]:
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    for name, change in topic_changes.items():
        data["topics"][name.replace("_", "-")].update(change)
    return data


def test_the_repository_topics_file_is_valid() -> None:
    spec = load_topics(REPO / "topics.yaml")
    assert spec.partitions("bid-commands") == spec.partitions("auction-events") == 8


def test_unknown_key_names_topic_and_key(tmp_path: Path) -> None:
    with pytest.raises(TopicsFileError, match=r"topics\.auction-events\.retension: unknown key"):
        load_topics(_write(tmp_path, _variant(auction_events={"retension": 5})))


def test_co_partitioning_mismatch_lists_each_count(tmp_path: Path) -> None:
    with pytest.raises(TopicsFileError, match=r"different partition counts .*auction-events=4"):
        load_topics(_write(tmp_path, _variant(auction_events={"partitions": 4})))


def test_changelog_must_be_compacted(tmp_path: Path) -> None:
    bad = _variant(
        **{
            "outbid-auctions-changelog": {
                "compacted": False,
                "configs": {"cleanup.policy": "delete"},
            }
        }
    )
    with pytest.raises(TopicsFileError, match=r"'outbid-auctions-changelog' must be compacted"):
        load_topics(_write(tmp_path, bad))


def test_event_store_must_never_expire(tmp_path: Path) -> None:
    bad = _variant(
        auction_events={"configs": {"cleanup.policy": "delete", "retention.ms": 86400000}}
    )
    with pytest.raises(TopicsFileError, match=r"event store and must never expire"):
        load_topics(_write(tmp_path, bad))


def test_missing_required_topic_is_named(tmp_path: Path) -> None:
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    del data["topics"]["bid-commands-dlq"]
    with pytest.raises(TopicsFileError, match=r"bid-commands-dlq missing"):
        load_topics(_write(tmp_path, data))


def test_non_mapping_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "topics.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(TopicsFileError, match="expected a mapping"):
        load_topics(path)


@pytest.mark.parametrize(
    ("brokers", "rf", "min_isr"), [(1, 1, "1"), (2, 2, "1"), (3, 3, "2"), (5, 3, "2")]
)
def test_auto_replication_follows_the_cluster(brokers: int, rf: int, min_isr: str) -> None:
    spec = load_topics(REPO / "topics.yaml")
    for topic in spec.resolve(brokers, prefix="p."):
        assert topic.name == f"p.{topic.key}"
        assert topic.replication_factor == rf
        assert topic.configs["min.insync.replicas"] == min_isr
