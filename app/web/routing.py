"""Make faust's table_route usable from the first request.

`table_route` asks the producer which partition a key hashes to (aiokafka's `_partition`), and
that raises TypeError ("'NoneType' object is not iterable") until the producer holds metadata
for the table's changelog topic, i.e. until this worker has written to that table once. A
worker that only serves reads answers 500 forever. Fetching the metadata first fixes it.
"""

from __future__ import annotations

from typing import Any

import faust


async def ensure_route_metadata(app: faust.App, table: Any) -> None:
    faust_producer: Any = app.producer
    producer = faust_producer._ensure_producer()  # the aiokafka producer behind faust's
    await producer.partitions_for(table.changelog_topic.get_topic_name())
