"""Which partition a key lands on: Kafka's default partitioner (Java's murmur2).

The console producer, kcat with `partitioner=murmur2_random`, every producer of this project and
the engine's re-routing all place keys this way, so one function answers "whose auction is this".
"""

from __future__ import annotations

from aiokafka.partitioner import murmur2


def partition_for(key: bytes, partitions: int) -> int:
    return int(murmur2(key) & 0x7FFFFFFF) % partitions
