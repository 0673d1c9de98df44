"""The Faust topics the workers use, named and sized by topics.yaml (never declared by Faust)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust

from app.settings import Settings
from app.topics import TopicsSpec
from app.topics.spec import COMMANDS, DLQ, EVENTS, SNAPSHOTS


@dataclass(frozen=True, slots=True)
class Topology:
    commands: Any  # faust.TopicT; faust ships no type information
    events: Any
    dead_letters: Any
    snapshots: Any  # per-auction aggregate snapshots (compacted)
    partitions: int


def declare(app: faust.App, settings: Settings, spec: TopicsSpec) -> Topology:
    def topic(key: str) -> Any:
        # Raw bytes in and out: the key is the auction id's UTF-8 (the same bytes the table and
        # table_route hash), and values are decoded by app.domain.codec, not by Faust's codecs.
        # value_type=bytes alone still decodes values with the app's default json serializer:
        # a non-JSON record then crashes the agent *before* it sees the message, and Faust
        # skips it. Both serializers must be "raw".
        return app.topic(
            settings.topic(key),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=spec.partitions(key),
            internal=False,
        )

    return Topology(
        commands=topic(COMMANDS),
        events=topic(EVENTS),
        dead_letters=topic(DLQ),
        snapshots=topic(SNAPSHOTS),
        partitions=spec.partitions(COMMANDS),
    )
