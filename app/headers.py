"""Record header names every writer and reader of the topics agrees on."""

from __future__ import annotations

from typing import Final

# On each event record: the command's issued_at (epoch seconds), so a reader can measure
# command -> event/projection latency without decoding the command.
ISSUED_AT: Final = "outbid.issued-at"
# On a command re-sent under its auction's key: "{topic}/{partition}/{offset}" of the original.
REROUTED_FROM: Final = "outbid.rerouted-from"
