"""outbid: event-sourced auction bidding on Kafka.

`faust -A app worker` looks up `app.app`; it is built on first access so that importing
`app.domain` (pure Python) or the CLI never pays for, or depends on, Faust.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "app":
        from app.faust_app import app  # noqa: PLC0415 - deliberately lazy

        return app
    raise AttributeError(f"module 'app' has no attribute {name!r}")
