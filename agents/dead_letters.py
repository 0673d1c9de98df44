"""Parking a record that cannot be processed: the dead-letter output with its reason in headers.

The original key and bytes are kept unchanged, so `outbid dlq replay` can re-drive them after a fix.
"""

from __future__ import annotations

from datetime import UTC, datetime

from agents.records import Destination, Headers, Incoming, Outcome, Output, Result

REASON = "outbid.reason"
ERROR = "outbid.error"
SOURCE_TOPIC = "outbid.source.topic"
SOURCE_PARTITION = "outbid.source.partition"
SOURCE_OFFSET = "outbid.source.offset"
FAILED_AT = "outbid.failed_at"
MAX_ERROR_BYTES = 2000


def dead_letter(record: Incoming, reason: str, error: str) -> Result:
    """The result that parks `record` in the dead-letter topic."""
    headers = dead_letter_headers(record.topic, record.partition, record.offset, reason, error)
    output = Output(Destination.DLQ, record.key, record.value, headers)
    return Result(Outcome.DEAD_LETTER, (output,), reason=reason)


def dead_letter_headers(
    topic: str, partition: int, offset: int, reason: str, error: str
) -> Headers:
    """Why a record was parked and where it came from (read by `outbid verify` and `dlq replay`)."""
    return [
        (REASON, reason.encode()),
        (ERROR, error.encode("utf-8", "replace")[:MAX_ERROR_BYTES]),
        (SOURCE_TOPIC, topic.encode()),
        (SOURCE_PARTITION, str(partition).encode()),
        (SOURCE_OFFSET, str(offset).encode()),
        (FAILED_AT, datetime.now(UTC).isoformat().encode()),
    ]
