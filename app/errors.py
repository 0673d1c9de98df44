"""Every exception outbid raises on purpose derives from OutbidError.

Domain *rejections* (a bid that is too low, a close on a closed auction) are
not exceptions: they become events. Exceptions are for messages that can never
be processed and for infrastructure trouble; `retriable` tells the caller
whether trying the same thing again can help.
"""

from __future__ import annotations

from enum import StrEnum


class OutbidError(Exception):
    """Root of outbid's exceptions."""

    retriable: bool = False


class InvalidReason(StrEnum):
    """Why a message was refused; the value is the dead-letter `reason` code."""

    NOT_UTF8 = "not_utf8"
    MALFORMED_JSON = "malformed_json"
    NOT_AN_OBJECT = "not_an_object"
    TOO_LARGE = "too_large"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    UNKNOWN_COMMAND_TYPE = "unknown_command_type"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
    AMOUNT_OUT_OF_RANGE = "amount_out_of_range"
    INVALID_ID = "invalid_id"
    INVALID_CURRENCY = "invalid_currency"
    INVALID_TIMESTAMP = "invalid_timestamp"
    INVALID_VALUE = "invalid_value"


class InvalidMessage(OutbidError):  # noqa: N818 - the name is part of the shared contract
    """A message that will never decode: route it to the dead-letter topic.

    `reason` is a short snake_case code (an InvalidReason), `message` tells the
    producer what to fix, `field` names the offending field when there is one.
    """

    def __init__(self, reason: InvalidReason, message: str, field: str | None = None) -> None:
        super().__init__(reason, message, field)
        self.reason = reason
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


class SequenceError(OutbidError):
    """An event does not directly follow the state it is applied to.

    The event log has a gap or a duplicate, or the stored state is not the one
    the events were decided against. Retrying does not help: rebuild the
    auction's state from its event topic.
    """

    def __init__(self, auction_id: str, version: int, seq: int) -> None:
        super().__init__(auction_id, version, seq)
        self.auction_id = auction_id
        self.version = version
        self.seq = seq

    def __str__(self) -> str:
        return (
            f"auction {self.auction_id!r} is at version {self.version} but the event has "
            f"seq {self.seq} (expected {self.version + 1}); rebuild its state from the event topic"
        )


# --- infrastructure and operations (the dev stack, topics, settings) -----------------


class ConfigurationError(OutbidError):
    """A setting or environment variable has a value outbid cannot use."""


class DevStackError(OutbidError):
    """The local Kafka/Redis stack could not be started, reached or stopped."""


class TopicsFileError(OutbidError):
    """topics.yaml is malformed or breaks a rule; the message names the topic and the fix."""


class TopicsDriftError(OutbidError):
    """Live topics cannot be aligned with topics.yaml without a risky change."""


class PartitionRevokedError(OutbidError):
    """The partition of the record being processed was taken away; its next owner redoes it."""


class KafkaUnavailableError(OutbidError):
    """No Kafka broker answered; usually the stack is down or the address is wrong."""

    retriable = True


class SnapshotError(OutbidError):
    """A snapshot that must not be loaded (corrupt, partial, unknown format, from elsewhere)."""
