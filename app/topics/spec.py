"""Load and validate topics.yaml, and resolve it for a concrete cluster.

Validation failures name the topic and the fix; nothing here talks to Kafka.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

from app.errors import TopicsFileError

# Names the code depends on; topics.yaml must declare each of them.
COMMANDS = "bid-commands"
EVENTS = "auction-events"
SNAPSHOTS = "auction-snapshots"
DLQ = "bid-commands-dlq"
AUCTIONS_CHANGELOG = "outbid-auctions-changelog"
HIGHEST_BIDS_CHANGELOG = "outbid-highest_bids-changelog"
BID_RATE_CHANGELOG = "outbid-bids_per_minute-changelog"
REQUIRED_TOPICS = (
    COMMANDS,
    EVENTS,
    SNAPSHOTS,
    DLQ,
    AUCTIONS_CHANGELOG,
    HIGHEST_BIDS_CHANGELOG,
    BID_RATE_CHANGELOG,
)
MUST_BE_COMPACTED = (SNAPSHOTS, AUCTIONS_CHANGELOG, HIGHEST_BIDS_CHANGELOG, BID_RATE_CHANGELOG)

_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
Auto = Literal["auto"]
ConfigValue = str | int | float | bool


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Defaults(_Model):
    partitions: Annotated[int, Field(ge=1, le=10_000)] = 8
    replication_factor: Annotated[int, Field(ge=1, le=16)] | Auto = "auto"
    configs: dict[str, ConfigValue] = Field(default_factory=dict)


class TopicDecl(_Model):
    description: str = ""
    partitions: Annotated[int, Field(ge=1, le=10_000)] | None = None
    replication_factor: Annotated[int, Field(ge=1, le=16)] | Auto | None = None
    compacted: bool = False
    configs: dict[str, ConfigValue] = Field(default_factory=dict)


class TopicsFile(_Model):
    version: Literal[1]
    defaults: Defaults = Field(default_factory=Defaults)
    co_partitioned: dict[str, list[str]] = Field(default_factory=dict)
    topics: dict[str, TopicDecl]

    @model_validator(mode="after")
    def _check(self) -> TopicsFile:
        for name in self.topics:
            if not _TOPIC_NAME.match(name):
                raise ValueError(
                    f"topic {name!r}: a Kafka topic name may only hold letters, digits, '.', '_' and '-'"
                )
        missing = [name for name in REQUIRED_TOPICS if name not in self.topics]
        if missing:
            raise ValueError(
                f"topic(s) {', '.join(missing)} missing: outbid needs them; add an entry under 'topics:'"
            )
        for name, decl in self.topics.items():
            policy = str({**self.defaults.configs, **decl.configs}.get("cleanup.policy", "delete"))
            compacting = "compact" in policy.split(",")
            if (decl.compacted or name in MUST_BE_COMPACTED) and not compacting:
                raise ValueError(
                    f"topic {name!r} must be compacted (it keeps the latest value per key): "
                    f"set 'cleanup.policy: compact' under its configs"
                )
            if decl.compacted != compacting:
                raise ValueError(
                    f"topic {name!r}: 'compacted: {str(decl.compacted).lower()}' disagrees with "
                    f"cleanup.policy={policy}; make them agree"
                )
        events_policy = self.topics[EVENTS].configs
        if str(events_policy.get("retention.ms")) != "-1":
            raise ValueError(
                f"topic {EVENTS!r} is the event store and must never expire: set 'retention.ms: -1'"
            )
        for group, members in self.co_partitioned.items():
            unknown = [m for m in members if m not in self.topics]
            if unknown:
                raise ValueError(
                    f"co_partitioned group {group!r} names undeclared topic(s) {', '.join(unknown)}"
                )
            counts = {m: self.topics[m].partitions or self.defaults.partitions for m in members}
            if len(set(counts.values())) > 1:
                listing = ", ".join(f"{m}={n}" for m, n in counts.items())
                raise ValueError(
                    f"co_partitioned group {group!r} has different partition counts ({listing}): "
                    "give every member the same 'partitions'"
                )
        return self


@dataclass(frozen=True, slots=True)
class ResolvedTopic:
    """A topic as it should exist on one cluster: prefixed name, numbers and configs as strings."""

    key: str  # the name in topics.yaml
    name: str  # the live name (prefix applied)
    partitions: int
    replication_factor: int
    configs: dict[str, str]
    co_partitioned: bool


@dataclass(frozen=True, slots=True)
class TopicsSpec:
    path: Path
    file: TopicsFile

    def partitions(self, key: str) -> int:
        return self.file.topics[key].partitions or self.file.defaults.partitions

    def resolve(self, brokers: int, prefix: str = "") -> list[ResolvedTopic]:
        """The topics for a cluster of `brokers` nodes, with every "auto" made concrete."""
        grouped = {m for members in self.file.co_partitioned.values() for m in members}
        resolved = []
        for key, decl in self.file.topics.items():
            rf_decl = decl.replication_factor or self.file.defaults.replication_factor
            rf = min(3, brokers) if rf_decl == "auto" else rf_decl
            configs = {}
            for name, declared in {**self.file.defaults.configs, **decl.configs}.items():
                auto_isr = declared == "auto" and name == "min.insync.replicas"
                configs[name] = _config_str((2 if rf >= 3 else 1) if auto_isr else declared)
            resolved.append(
                ResolvedTopic(
                    key=key,
                    name=f"{prefix}{key}",
                    partitions=self.partitions(key),
                    replication_factor=rf,
                    configs=configs,
                    co_partitioned=key in grouped,
                )
            )
        return resolved


def _config_str(value: ConfigValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def load_topics(path: Path) -> TopicsSpec:
    """Parse and validate topics.yaml; every failure is a TopicsFileError naming the fix."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise TopicsFileError(f"{path}: no such file (set OUTBID_TOPICS_FILE)") from exc
    except yaml.YAMLError as exc:
        raise TopicsFileError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise TopicsFileError(f"{path}: expected a mapping with 'version' and 'topics' at the top")
    try:
        return TopicsSpec(path=path, file=TopicsFile.model_validate(raw))
    except ValidationError as exc:
        raise TopicsFileError(
            f"{path}: " + "; ".join(_describe(err) for err in exc.errors())
        ) from exc


def _describe(err: ErrorDetails) -> str:
    where = ".".join(str(part) for part in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"{where}: unknown key (allowed keys are listed in the comments of topics.yaml)"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{where}: {msg}" if where else msg
