"""Primitives of the wire format: JSON objects, ids, money, currencies, instants.

`app.domain.codec` composes these into message layouts; docs/schema.md is
the contract both follow. Every failure is an InvalidMessage naming its field.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final, TypeVar

import orjson

from app.errors import InvalidMessage, InvalidReason

MAX_AMOUNT: Final = 10**15  # minor units: 10 trillion in a two-decimal currency
MAX_ID_LENGTH: Final = 128
ID_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]*")
CURRENCY_PATTERN: Final = re.compile(r"[A-Z]{3}")
# The same two rules as regex text (the id's length included), for text_fields_pattern.
ID_REGEX: Final = rf"[A-Za-z0-9][A-Za-z0-9._:@-]{{0,{MAX_ID_LENGTH - 1}}}"
CURRENCY_REGEX: Final = CURRENCY_PATTERN.pattern

_E = TypeVar("_E", bound=StrEnum)


def format_timestamp(moment: datetime) -> str:
    """`2024-05-01T12:00:00.250000Z`-style text for an aware datetime."""
    if moment.tzinfo is None:
        msg = f"refusing to format naive {moment!r}: outbid only handles aware UTC datetimes"
        raise ValueError(msg)
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    if type(moment) is datetime:  # orjson refuses subclasses
        # orjson writes a UTC datetime as isoformat() does, with "Z" for "+00:00", 3x faster.
        return orjson.dumps(moment, option=orjson.OPT_UTC_Z)[1:-1].decode()
    return moment.isoformat().removesuffix("+00:00") + "Z"


def parse_timestamp(text: str) -> datetime:
    """An aware UTC datetime from ISO-8601 text that names its offset, else ValueError."""
    moment = datetime.fromisoformat(text)
    if moment.utcoffset() is None:
        msg = f"{text!r} has no timezone offset"
        raise ValueError(msg)
    try:
        return moment.astimezone(UTC)
    except OverflowError as exc:
        msg = f"{text!r} is out of range once converted to UTC"
        raise ValueError(msg) from exc


_ID_LIST: Final = re.compile(rf"{ID_REGEX}(?: {ID_REGEX})*")  # ids joined by spaces


def text_fields_pattern(*regexes: str) -> re.Pattern[str]:
    """A pattern for several text fields joined by single spaces, one regex each.

    One `fullmatch` of it checks them all at once: the fields' rules admit no space, so a
    space inside a field is a mismatch, never a shifted field.
    """
    return re.compile(" ".join(regexes))


def utc_timestamp_or_none(text: str) -> datetime | None:
    """What parse_timestamp gives for text that names UTC ("Z", "+00:00"); None otherwise.

    A quick check for the common case that never raises: None says "ask parse_timestamp",
    which converts other offsets and explains what is wrong.
    """
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is UTC else None


def load_object(raw: bytes, what: str) -> dict[str, object]:
    """The JSON object in `raw`; `what` names the message in error texts."""
    if not isinstance(raw, bytes | bytearray):
        raise InvalidMessage(
            InvalidReason.MALFORMED_JSON,
            f"the {what} has no JSON value (got {type(raw).__name__}; a tombstone?)",
        )
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            bytes(raw).decode("utf-8")
        except UnicodeDecodeError as not_utf8:
            raise InvalidMessage(
                InvalidReason.NOT_UTF8, f"the {what} must be UTF-8 encoded JSON ({not_utf8})"
            ) from not_utf8
        raise InvalidMessage(
            InvalidReason.MALFORMED_JSON, f"the {what} is not valid JSON ({exc})"
        ) from exc
    if not isinstance(value, dict):
        raise InvalidMessage(
            InvalidReason.NOT_AN_OBJECT,
            f"the {what} must be a JSON object, got JSON {type(value).__name__}",
        )
    return value


class Fields:
    """Validated reads from one JSON object.

    A key that is absent is `missing_field`; `optional_*` readers still need
    the key but accept null.
    """

    __slots__ = ("data",)

    def __init__(self, data: dict[str, object]) -> None:
        self.data = data

    def _get(self, name: str) -> object:
        try:
            return self.data[name]
        except KeyError:
            raise InvalidMessage(
                InvalidReason.MISSING_FIELD, f'add the required field "{name}"', name
            ) from None

    def _wrong_type(self, name: str, expected: str) -> InvalidMessage:
        got = type(self.data[name]).__name__
        return InvalidMessage(
            InvalidReason.WRONG_TYPE, f'"{name}" must be {expected}, got JSON {got}', name
        )

    def is_null(self, name: str) -> bool:
        return self._get(name) is None

    def text(self, name: str) -> str:
        value = self._get(name)
        if not isinstance(value, str):
            raise self._wrong_type(name, "a string")
        return value

    def integer(self, name: str) -> int:
        value = self._get(name)
        if type(value) is not int:  # bool is an int subclass: true is not 1 here
            raise self._wrong_type(name, "an integer")
        return value

    def counter(self, name: str, *, minimum: int) -> int:
        value = self.integer(name)
        if value < minimum:
            raise InvalidMessage(
                InvalidReason.INVALID_VALUE, f'"{name}" must be >= {minimum}, got {value}', name
            )
        return value

    def amount(self, name: str, *, minimum: int = 1) -> int:
        value = self.integer(name)
        if not minimum <= value <= MAX_AMOUNT:
            raise InvalidMessage(
                InvalidReason.AMOUNT_OUT_OF_RANGE,
                f'"{name}" is {value}; it must be between {minimum} and {MAX_AMOUNT} '
                "minor units (1500 means 15.00)",
                name,
            )
        return value

    def ident(self, name: str) -> str:
        value = self.text(name)
        if len(value) > MAX_ID_LENGTH or not ID_PATTERN.fullmatch(value):
            raise InvalidMessage(
                InvalidReason.INVALID_ID,
                f'"{name}" must be 1-{MAX_ID_LENGTH} characters of A-Z a-z 0-9 . _ : @ - '
                "starting with a letter or digit",
                name,
            )
        return value

    def currency(self, name: str) -> str:
        value = self.text(name)
        if not CURRENCY_PATTERN.fullmatch(value):
            raise InvalidMessage(
                InvalidReason.INVALID_CURRENCY,
                f'"{name}" must be a 3-letter upper-case ISO-4217 code like "EUR", got {value!r}',
                name,
            )
        return value

    def timestamp(self, name: str) -> datetime:
        value = self.text(name)
        try:
            return parse_timestamp(value)
        except ValueError as exc:
            raise InvalidMessage(
                InvalidReason.INVALID_TIMESTAMP,
                f'"{name}" must be ISO-8601 with a timezone, e.g. "2024-05-01T12:00:00Z" ({exc})',
                name,
            ) from exc

    def choice(self, name: str, allowed: type[_E]) -> _E:
        value = self.text(name)
        try:
            return allowed(value)
        except ValueError:
            known = ", ".join(member.value for member in allowed)
            raise InvalidMessage(
                InvalidReason.INVALID_VALUE, f'"{name}" must be one of {known}, got {value!r}', name
            ) from None

    def optional_ident(self, name: str) -> str | None:
        return None if self.is_null(name) else self.ident(name)

    def optional_amount(self, name: str) -> int | None:
        return None if self.is_null(name) else self.amount(name, minimum=0)

    def optional_currency(self, name: str) -> str | None:
        return None if self.is_null(name) else self.currency(name)

    def optional_timestamp(self, name: str) -> datetime | None:
        return None if self.is_null(name) else self.timestamp(name)

    def ident_list(self, name: str) -> tuple[str, ...]:
        values = self._get(name)
        if not isinstance(values, list):
            raise self._wrong_type(name, "an array of ids")
        try:  # the common case, every item an id, checked by one regex (RocksDB reads 1000s)
            joined = " ".join(values)
        except TypeError:  # an item that is not a string
            pass
        else:  # as many spaces as separators: no item holds one
            if not values or (joined.count(" ") == len(values) - 1 and _ID_LIST.fullmatch(joined)):
                return tuple(values)
        return tuple(Fields({name: value}).ident(name) for value in values)
