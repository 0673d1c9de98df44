"""Parking records that cannot be processed in the dead-letter topic, with the reason in headers.

The original key and bytes are kept unchanged, so `outbid dlq replay` can re-drive them after a fix.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from app import metrics

log = logging.getLogger(__name__)

REASON = "outbid.reason"
ERROR = "outbid.error"
SOURCE_TOPIC = "outbid.source.topic"
SOURCE_PARTITION = "outbid.source.partition"
SOURCE_OFFSET = "outbid.source.offset"
FAILED_AT = "outbid.failed_at"
MAX_ERROR_BYTES = 2000


class DeadLetters:
    def __init__(self, topic: Any) -> None:
        self.topic = topic

    async def park(self, message: Any, reason: str, error: str) -> None:
        log.warning(
            "dead-lettering %s[%s]@%s: %s: %s",
            message.topic,
            message.partition,
            message.offset,
            reason,
            error,
        )
        headers = dead_letter_headers(
            message.topic, message.partition, message.offset, reason, error
        )
        await self.topic.send(key=message.key, value=message.value, headers=headers)
        metrics.DEAD_LETTERS.labels(reason).inc()


def dead_letter_headers(
    topic: str, partition: int, offset: int, reason: str, error: str
) -> list[tuple[str, bytes]]:
    """Why a record was parked and where it came from (read by `outbid verify` and `dlq replay`)."""
    return [
        (REASON, reason.encode()),
        (ERROR, error.encode("utf-8", "replace")[:MAX_ERROR_BYTES]),
        (SOURCE_TOPIC, topic.encode()),
        (SOURCE_PARTITION, str(partition).encode()),
        (SOURCE_OFFSET, str(offset).encode()),
        (FAILED_AT, datetime.now(UTC).isoformat().encode()),
    ]
