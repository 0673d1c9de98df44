"""The hot path: the command handler and the highest-bid projection in one confluent-kafka loop.

An alternative to the Faust agents for the write side (docs/benchmarks.md says why and how
fast); same topics, same records, same guarantees.
"""

from app.hotpath.processor import HotPath, HotPathError, Options

__all__ = ["HotPath", "HotPathError", "Options"]
