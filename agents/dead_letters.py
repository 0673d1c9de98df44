"""Parking a record that cannot be processed: the dead-letter output with its reason in headers.

The original key and bytes are kept unchanged, so `outbid dlq replay` can re-drive them after a fix;
except a record too big to write again (a compressed batch of bid-commands can hold a record far
larger than any producer may send uncompressed): its first bytes are parked, marked truncated.
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
TRUNCATED = "outbid.truncated"  # "key=<bytes> value=<bytes>": the original sizes
MAX_ERROR_BYTES = 2000
# Key + value of a dead letter: below librdkafka's message.max.bytes (1,000,000, checked on the
# uncompressed record when the engine produces it) and the broker's default max.message.bytes
# (1,048,588) for the dead-letter topic, with room for the headers. Beyond it the produce call
# fails, and a worker that cannot park a record cannot move past it.
MAX_PARKED_BYTES = 900_000


def dead_letter(record: Incoming, reason: str, error: str) -> Result:
    """The result that parks `record` in the dead-letter topic."""
    headers = dead_letter_headers(record.topic, record.partition, record.offset, reason, error)
    key, value = record.key, record.value
    size = len(key or b"") + len(value or b"")
    if size > MAX_PARKED_BYTES:
        headers.append((TRUNCATED, f"key={len(key or b'')} value={len(value or b'')}".encode()))
        key, value = _truncated(key, value)
    output = Output(Destination.DLQ, key, value, headers)
    return Result(Outcome.DEAD_LETTER, (output,), reason=reason)


def _truncated(key: bytes | None, value: bytes | None) -> tuple[bytes | None, bytes | None]:
    """The first bytes of each, MAX_PARKED_BYTES together; a short one is kept whole."""
    key_room = max(MAX_PARKED_BYTES - len(value or b""), MAX_PARKED_BYTES // 2)
    key = key[:key_room] if key is not None else None
    value = value[: MAX_PARKED_BYTES - len(key or b"")] if value is not None else None
    return key, value


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
